package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/internal/beneath"
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
func imageLinkTarget(d digest.Digest) string {
	return "../" + objectsDir + "/" + d.ObjectPath()
}

// refLinkTarget is what images/refs/NAME points at: images/DIGEST, relative
// to the link, as composefs-rs writes it.
func refLinkTarget(name string, d digest.Digest) string {
	return strings.Repeat("../", strings.Count(name, "/")+1) + d.Hex()
}

// parseRefTarget returns the digest a reference's link names.
func (r *Repo) parseRefTarget(name, target string) (digest.Digest, error) {
	rest, ok := strings.CutPrefix(target, strings.Repeat("../", strings.Count(name, "/")+1))
	if !ok || !digest.IsHex(rest, 2*r.alg.Size()) {
		return digest.Digest{}, fmt.Errorf("reference %s points at %q, not at an image (images/DIGEST)", name, target)
	}
	return r.ParseDigest(rest)
}

// linkImage links a stored image as images/DIGEST.
func (r *Repo) linkImage(d digest.Digest) error {
	images, err := r.root.Dir(imagesDir, true)
	if err != nil {
		return fmt.Errorf("repo: linking image %s: %w", d, err)
	}
	defer images.Close()
	target := imageLinkTarget(d)
	err = images.Symlink(target, d.Hex())
	if errors.Is(err, fs.ErrExist) {
		err = r.replaceSymlinkIn(images, d.Hex(), target)
	}
	if err != nil {
		return fmt.Errorf("repo: linking image %s: %w", d, err)
	}
	return nil
}

// replaceSymlinkAt atomically makes rel, relative to the repository, a
// symlink to target: a new symlink made under tmp/, renamed over rel
// (whose parent directories are created if needed); a symlink to target
// there already is left as it is. Nothing is reached through a symbolic
// link.
// A parent directory removed meanwhile (a concurrent untag removes those
// it leaves empty) is made again.
func (r *Repo) replaceSymlinkAt(rel, target string) error {
	dir, base := path.Split(rel)
	for attempt := 0; ; attempt++ {
		parent := r.root
		if dir != "" {
			var err error
			if parent, err = r.root.Dir(strings.TrimSuffix(dir, "/"), true); err != nil {
				return err
			}
		}
		err := r.replaceSymlinkIn(parent, base, target)
		if parent != r.root {
			parent.Close()
		}
		if errors.Is(err, fs.ErrNotExist) && attempt < 5 {
			continue
		}
		return err
	}
}

// replaceSymlinkIn makes name in dir a symlink to target, atomically.
func (r *Repo) replaceSymlinkIn(dir *beneath.Dir, name, target string) error {
	if cur, err := dir.Readlink(name); err == nil && cur == target {
		return nil
	}
	if r.tmp == nil {
		return fmt.Errorf("%s: %w", tmpDir, r.tmpErr)
	}
	tmp := "link-" + randomName()
	if err := r.tmp.Symlink(target, tmp); err != nil {
		return err
	}
	err := r.tmp.Rename(tmp, dir, name)
	if err != nil {
		r.tmp.Remove(tmp)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s is a directory", dir.Join(name))
		}
	}
	return err
}

// setRef points the reference name at an image, atomically.
func (r *Repo) setRef(name string, d digest.Digest) error {
	if err := CheckRefName(name); err != nil {
		return err
	}
	if err := r.replaceSymlinkAt(refsDir+"/"+name, refLinkTarget(name, d)); err != nil {
		return fmt.Errorf("repo: setting reference %s: %w", name, err)
	}
	return nil
}

// readlink reads the symlink rel, relative to the repository, reached
// through no symbolic link.
func (r *Repo) readlink(rel string) (string, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		return r.root.Readlink(base)
	}
	parent, err := r.root.Dir(strings.TrimSuffix(dir, "/"), false)
	if err != nil {
		return "", err
	}
	defer parent.Close()
	return parent.Readlink(base)
}

// Tag points the reference name at image (any name Resolve takes),
// replacing what it pointed at.
func (r *Repo) Tag(name, image string) error {
	if err := r.checkWrite(name); err != nil {
		return err
	}
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := r.Resolve(image)
	if err != nil {
		return err
	}
	if err := r.setRef(name, d); err != nil {
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
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return err
	}
	defer unlock()
	if err := r.removeLink(refsDir, refsDir+"/"+name); err != nil {
		return err
	}
	return r.sync()
}

// removeEmptyDirs removes the directory rel of top (relative to the
// repository) and those above it, up to top, while they are empty.
func (r *Repo) removeEmptyDirs(top, rel string) {
	for ; rel != "." && rel != "/" && rel != ""; rel = path.Dir(rel) {
		dir, base := path.Split(top + "/" + rel)
		parent, err := r.root.Dir(strings.TrimSuffix(dir, "/"), false)
		if err != nil {
			return
		}
		err = unix.Unlinkat(parent.Fd(), base, unix.AT_REMOVEDIR)
		parent.Close()
		if err != nil {
			return
		}
	}
}

// Resolve returns the digest of the image called name: "refs/NAME" or NAME
// for a reference, or the image's hex digest. The image must be linked
// under images/.
func (r *Repo) Resolve(name string) (digest.Digest, error) {
	if ref, ok := strings.CutPrefix(name, "refs/"); ok {
		return r.ResolveRef(ref)
	}
	if digest.IsHex(name, 2*r.alg.Size()) {
		d, err := r.ParseDigest(name)
		if err != nil {
			return digest.Digest{}, err
		}
		if err := r.checkImageLink(d); err == nil || !errors.Is(err, ErrNotFound) {
			return d, err
		}
		if _, rerr := r.readlink(refsDir + "/" + name); rerr != nil {
			return digest.Digest{}, fmt.Errorf("%w: image %s", ErrNotFound, name)
		}
	}
	return r.ResolveRef(name)
}

// ResolveRef returns the digest of the image the reference name points at.
func (r *Repo) ResolveRef(name string) (digest.Digest, error) {
	if err := CheckRefName(name); err != nil {
		return digest.Digest{}, err
	}
	target, err := r.readlink(refsDir + "/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return digest.Digest{}, fmt.Errorf("%w: no image or reference %s", ErrNotFound, name)
	}
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: reference %s: %w", name, err)
	}
	d, err := r.parseRefTarget(name, target)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: %w", err)
	}
	if err := r.checkImageLink(d); err != nil {
		return digest.Digest{}, fmt.Errorf("reference %s: %w", name, err)
	}
	return d, nil
}

// checkImageLink checks that images/DIGEST is the link to the image's
// object.
func (r *Repo) checkImageLink(d digest.Digest) error {
	target, err := r.readlink(imagesDir + "/" + d.Hex())
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: image %s", ErrNotFound, d)
	}
	if err != nil {
		return fmt.Errorf("repo: image %s: %w", d, err)
	}
	if target != imageLinkTarget(d) {
		return fmt.Errorf("repo: %s points at %q, not at its object %s", r.ImagePath(d), target, imageLinkTarget(d))
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
// images/refs/ that are not references. Directories are walked beneath
// the repository; a symbolic link is never followed.
func (r *Repo) readRefs() ([]Ref, []badEntry, error) {
	top, err := r.root.Dir(refsDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("repo: reading references: %w", err)
	}
	defer top.Close()
	var refs []Ref
	var bad []badEntry
	if err := r.walkRefs(top, "", &refs, &bad); err != nil {
		return nil, nil, fmt.Errorf("repo: reading references: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, bad, nil
}

// walkRefs adds the references under dir, named prefix + NAME.
func (r *Repo) walkRefs(dir *beneath.Dir, prefix string, refs *[]Ref, bad *[]badEntry) error {
	ents, err := dir.ReadDir()
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := prefix + e.Name
		switch {
		case e.Type.IsDir():
			sub, err := dir.Dir(e.Name, false)
			if err != nil {
				return err
			}
			err = r.walkRefs(sub, name+"/", refs, bad)
			sub.Close()
			if err != nil {
				return err
			}
			continue
		case e.Type&fs.ModeSymlink == 0:
			*bad = append(*bad, badEntry{refsDir + "/" + name, "not a symlink"})
			continue
		case CheckRefName(name) != nil:
			*bad = append(*bad, badEntry{refsDir + "/" + name, "not a valid reference name"})
			continue
		}
		target, err := dir.Readlink(e.Name)
		if err != nil {
			return err
		}
		d, err := r.parseRefTarget(name, target)
		if err != nil {
			*bad = append(*bad, badEntry{refsDir + "/" + name, err.Error()})
			continue
		}
		*refs = append(*refs, Ref{Name: name, Image: d.Hex()})
	}
	return nil
}

// Refs lists the references, sorted by name (references that do not
// point at images/DIGEST are left out; Fsck reports them).
func (r *Repo) Refs() ([]Ref, error) {
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	refs, _, err := r.readRefs()
	return refs, err
}

// readImageLinks lists the images under images/ (hex digests, sorted) and
// the entries there that are not image links. images/ is opened beneath
// the repository: a symbolic link there is an error.
func (r *Repo) readImageLinks() ([]string, []badEntry, error) {
	images, err := r.root.Dir(imagesDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("repo: %w", err)
	}
	defer images.Close()
	ents, err := images.ReadDir()
	if err != nil {
		return nil, nil, fmt.Errorf("repo: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	var names []string
	var bad []badEntry
	for _, e := range ents {
		name := e.Name
		if name == "refs" {
			continue
		}
		rel := imagesDir + "/" + name
		d, err := r.ParseDigest(name)
		if err != nil {
			bad = append(bad, badEntry{rel, "not named by a " + r.alg.String() + " digest"})
			continue
		}
		if err := r.checkImageLink(d); err != nil {
			bad = append(bad, badEntry{rel, err.Error()})
			continue
		}
		names = append(names, name)
	}
	return names, bad, nil
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
	unlock, err := r.Lock(context.Background(), false)
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
