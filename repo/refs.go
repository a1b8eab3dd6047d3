package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// CheckRefName reports whether name can name a reference: slash-separated
// components, each 1 to 255 bytes, none "." or ".." or starting with "."
// (kept for temporary names), no NUL, 1024 bytes at most.
func CheckRefName(name string) error {
	if name == "" || len(name) > 1024 {
		return fmt.Errorf("%w: %q: must be 1 to 1024 bytes", ErrInvalidName, name)
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "":
			return fmt.Errorf("%w: %q: empty component (leading, trailing or double slash)", ErrInvalidName, name)
		case len(c) > 255:
			return fmt.Errorf("%w: %q: component longer than 255 bytes", ErrInvalidName, name)
		case c[0] == '.':
			return fmt.Errorf("%w: %q: a component starts with '.'", ErrInvalidName, name)
		case strings.IndexByte(c, 0) >= 0:
			return fmt.Errorf("%w: %q: NUL byte", ErrInvalidName, name)
		}
	}
	return nil
}

// imageLinkTarget is what images/DIGEST points at.
func imageLinkTarget(digest []byte) string {
	return "../" + objectsDir + "/" + ObjectRel(digest)
}

// refLinkTarget is what images/refs/NAME points at: images/DIGEST, relative
// to the link, as composefs-rs writes it.
func refLinkTarget(name string, digest []byte) string {
	return strings.Repeat("../", strings.Count(name, "/")+1) + fsverity.Hex(digest)
}

// parseRefTarget returns the digest a reference's link names.
func (r *Repo) parseRefTarget(name, target string) ([]byte, error) {
	rest, ok := strings.CutPrefix(target, strings.Repeat("../", strings.Count(name, "/")+1))
	if !ok || !isHex(rest, 2*r.alg.Size()) {
		return nil, fmt.Errorf("reference %s points at %q, not at an image (images/DIGEST)", name, target)
	}
	return r.ParseDigest(rest)
}

// linkImage links a stored image as images/DIGEST.
func (r *Repo) linkImage(digest []byte) error {
	path := r.ImagePath(digest)
	target := imageLinkTarget(digest)
	err := os.Symlink(target, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = os.Symlink(target, path)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		if cur, lerr := os.Readlink(path); lerr == nil && cur == target {
			return nil
		}
		err = r.ReplaceSymlink(target, path)
	}
	if err != nil {
		return fmt.Errorf("repo: linking image %s: %w", fsverity.Hex(digest), err)
	}
	return nil
}

// ReplaceSymlink atomically makes path, a path inside the repository, a
// symlink to target: a new symlink made under tmp/, renamed over path
// (whose parent directories are created if needed). A symlink to target
// there already is left as it is. It is how references are set, for a
// package that names things in the repository by itself (with the
// repository lock held).
func (r *Repo) ReplaceSymlink(target, path string) error {
	if cur, err := os.Readlink(path); err == nil && cur == target {
		return nil
	}
	tmp := filepath.Join(r.dir, tmpDir, "link-"+randomName())
	err := os.Symlink(target, tmp)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(tmp), 0o755); err == nil {
			err = os.Symlink(target, tmp)
		}
	}
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err = os.Rename(tmp, path)
		if err == nil {
			return nil
		}
		// A concurrent untag may have removed the (empty) parent.
		if errors.Is(err, fs.ErrNotExist) && attempt < 5 {
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				continue
			}
		}
		os.Remove(tmp)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s is a directory", path)
		}
		return err
	}
}

// setRef points the reference name at an image, atomically.
func (r *Repo) setRef(name string, digest []byte) error {
	if err := CheckRefName(name); err != nil {
		return err
	}
	path := filepath.Join(r.dir, refsDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("repo: setting reference %s: %w", name, err)
	}
	if err := r.ReplaceSymlink(refLinkTarget(name, digest), path); err != nil {
		return fmt.Errorf("repo: setting reference %s: %w", name, err)
	}
	return nil
}

// Tag points the reference name at image (any name Resolve takes),
// replacing what it pointed at.
func (r *Repo) Tag(name, image string) error {
	if err := r.checkWrite(name); err != nil {
		return err
	}
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	digest, err := r.Resolve(image)
	if err != nil {
		return err
	}
	if err := r.setRef(name, digest); err != nil {
		return err
	}
	return r.sync()
}

// Untag removes the reference name (and the directories above it that it
// leaves empty). The image stays until garbage collection.
func (r *Repo) Untag(name string) error {
	if err := r.checkWrite(name); err != nil {
		return err
	}
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(r.dir, refsDir, filepath.FromSlash(name))
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: reference %s", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("repo: %s is not a reference", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	top := filepath.Join(r.dir, refsDir)
	for d := filepath.Dir(path); d != top && strings.HasPrefix(d, top); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return r.sync()
}

// Resolve returns the digest of the image called name: "refs/NAME" or NAME
// for a reference, or the image's hex digest. The image must be linked
// under images/.
func (r *Repo) Resolve(name string) ([]byte, error) {
	if ref, ok := strings.CutPrefix(name, "refs/"); ok {
		return r.ResolveRef(ref)
	}
	if isHex(name, 2*r.alg.Size()) {
		d, err := r.ParseDigest(name)
		if err != nil {
			return nil, err
		}
		if err := r.checkImageLink(d); err == nil || !errors.Is(err, ErrNotFound) {
			return d, err
		}
		if _, rerr := os.Lstat(filepath.Join(r.dir, refsDir, name)); rerr != nil {
			return nil, fmt.Errorf("%w: image %s", ErrNotFound, name)
		}
	}
	return r.ResolveRef(name)
}

// ResolveRef returns the digest of the image the reference name points at.
func (r *Repo) ResolveRef(name string) ([]byte, error) {
	if err := CheckRefName(name); err != nil {
		return nil, err
	}
	target, err := os.Readlink(filepath.Join(r.dir, refsDir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no image or reference %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("repo: reference %s: %w", name, err)
	}
	d, err := r.parseRefTarget(name, target)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if err := r.checkImageLink(d); err != nil {
		return nil, fmt.Errorf("reference %s: %w", name, err)
	}
	return d, nil
}

// checkImageLink checks that images/DIGEST is the link to the image's
// object.
func (r *Repo) checkImageLink(digest []byte) error {
	path := r.ImagePath(digest)
	target, err := os.Readlink(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: image %s", ErrNotFound, fsverity.Hex(digest))
	}
	if err != nil {
		return fmt.Errorf("repo: image %s: %w", fsverity.Hex(digest), err)
	}
	if target != imageLinkTarget(digest) {
		return fmt.Errorf("repo: %s points at %q, not at its object %s", path, target, imageLinkTarget(digest))
	}
	return nil
}

// Ref is a reference and the image it names.
type Ref struct {
	Name  string `json:"name"`
	Image string `json:"image"` // hex digest
}

// badEntry is something under images/ that is not what it should be.
type badEntry struct {
	path   string // relative to the repository
	detail string
}

// readRefs lists the references (sorted by name), and the entries under
// images/refs/ that are not references.
func (r *Repo) readRefs() ([]Ref, []badEntry, error) {
	top := filepath.Join(r.dir, refsDir)
	var refs []Ref
	var bad []badEntry
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == top && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if path == top {
			return nil
		}
		rel, _ := filepath.Rel(top, path)
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink == 0:
			bad = append(bad, badEntry{refsDir + "/" + name, "not a symlink"})
			return nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		if CheckRefName(name) != nil {
			bad = append(bad, badEntry{refsDir + "/" + name, "not a valid reference name"})
			return nil
		}
		d2, err := r.parseRefTarget(name, target)
		if err != nil {
			bad = append(bad, badEntry{refsDir + "/" + name, err.Error()})
			return nil
		}
		refs = append(refs, Ref{Name: name, Image: fsverity.Hex(d2)})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("repo: reading references: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, bad, nil
}

// Refs lists the references, sorted by name (references that do not
// point at images/DIGEST are left out; Fsck reports them).
func (r *Repo) Refs() ([]Ref, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	refs, _, err := r.readRefs()
	return refs, err
}

// readImageLinks lists the images under images/ (hex digests, sorted) and
// the entries there that are not image links.
func (r *Repo) readImageLinks() ([]string, []badEntry, error) {
	ents, err := os.ReadDir(filepath.Join(r.dir, imagesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("repo: %w", err)
	}
	var images []string
	var bad []badEntry
	for _, e := range ents {
		name := e.Name()
		if name == "refs" {
			continue
		}
		rel := imagesDir + "/" + name
		if !isHex(name, 2*r.alg.Size()) {
			bad = append(bad, badEntry{rel, "not named by a " + r.alg.String() + " digest"})
			continue
		}
		d, _ := r.ParseDigest(name)
		if err := r.checkImageLink(d); err != nil {
			bad = append(bad, badEntry{rel, err.Error()})
			continue
		}
		images = append(images, name)
	}
	return images, bad, nil
}

// ImageInfo describes an image of the repository.
type ImageInfo struct {
	// Digest is the image's fs-verity digest, in hex.
	Digest string `json:"digest"`
	// Refs are the references that point at it.
	Refs []string `json:"refs"`
	// Size is the image file's size in bytes, -1 if its object is missing.
	Size int64 `json:"size"`
}

// Images lists the repository's images, sorted by digest.
func (r *Repo) Images() ([]ImageInfo, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	names, _, err := r.readImageLinks()
	if err != nil {
		return nil, err
	}
	refs, _, err := r.readRefs()
	if err != nil {
		return nil, err
	}
	byImage := make(map[string][]string)
	for _, ref := range refs {
		byImage[ref.Image] = append(byImage[ref.Image], ref.Name)
	}
	infos := make([]ImageInfo, 0, len(names))
	for _, n := range names {
		info := ImageInfo{Digest: n, Refs: byImage[n], Size: -1}
		if info.Refs == nil {
			info.Refs = []string{}
		}
		d, _ := r.ParseDigest(n)
		if fi, err := os.Stat(r.ObjectPath(d)); err == nil {
			info.Size = fi.Size()
		}
		infos = append(infos, info)
	}
	return infos, nil
}
