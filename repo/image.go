package repo

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/tree"
)

// objUse is an object an image refers to, and where.
type objUse struct {
	digest digest.Digest
	files  []string // paths in the image with that content
}

// objectsOf lists the objects root refers to, sorted by path, and what is
// wrong with the files that do not refer to one properly.
func (r *Repo) objectsOf(root *tree.Node) ([]*objUse, []string) {
	byDigest := make(map[digest.Digest]*objUse)
	var problems []string
	root.Walk(func(p string, n *tree.Node) error {
		if !hasObject(n) {
			return nil
		}
		if n.Payload == "" {
			problems = append(problems, fmt.Sprintf("%s: %d-byte file with neither inline content nor an object", p, n.Size))
			return nil
		}
		d, err := r.ParseObjectRel(n.Payload)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		// The metacopy digest overlayfs checks the object against, SHA-256
		// or SHA-512 (composefs-rs's OverlayMetacopy), must be the
		// object's name; images without one (gocfs's SHA-512 images of
		// before) pass.
		if n.Digest != nil && !d.Equal(r.alg, n.Digest) {
			problems = append(problems, fmt.Sprintf("%s: its fs-verity digest %s is not that of its object %s", p, fsverity.Hex(n.Digest), n.Payload))
		}
		u := byDigest[d]
		if u == nil {
			u = &objUse{digest: d}
			byDigest[d] = u
		}
		u.files = append(u.files, p)
		return nil
	})
	uses := make([]*objUse, 0, len(byDigest))
	for _, u := range byDigest {
		uses = append(uses, u)
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].digest.Hex() < uses[j].digest.Hex() })
	return uses, problems
}

// readImage reads the image with the given digest from its object.
func (r *Repo) readImage(d digest.Digest) (*tree.Node, error) {
	f, err := r.st.OpenObject(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return image.Read(f, fi.Size(), image.ReadOptions{})
}

// ReadImage reads the image called name (see Resolve) into a tree, and
// returns its digest. The image's digest is not checked (Fsck does).
func (r *Repo) ReadImage(name string) (*tree.Node, digest.Digest, error) {
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return nil, digest.Digest{}, err
	}
	defer unlock()
	d, err := r.Resolve(name)
	if err != nil {
		return nil, digest.Digest{}, err
	}
	root, err := r.readImage(d)
	if err != nil {
		return nil, digest.Digest{}, fmt.Errorf("repo: image %s: %w", d, err)
	}
	return root, d, nil
}

// ImageObjects returns the digests (hex, sorted) of the objects the image
// called name refers to.
func (r *Repo) ImageObjects(name string) ([]string, error) {
	root, d, err := r.ReadImage(name)
	if err != nil {
		return nil, err
	}
	uses, problems := r.objectsOf(root)
	if len(problems) > 0 {
		return nil, fmt.Errorf("repo: image %s: %s", d, problems[0])
	}
	out := make([]string, len(uses))
	for i, u := range uses {
		out[i] = u.digest.Hex()
	}
	return out, nil
}

// Mount mounts the image called name (see Resolve) on target, with the
// repository's object store as basedir, with the kernel or with FUSE as
// package mounter chooses. The image's digest is checked as
// mount.composefs's digest= option does (in a SHA-256 repository that is
// the option itself). opts.Basedirs and opts.ExpectedDigest are set here;
// the rest of opts is used as given (the zero Options check fs-verity where
// the system can, verify the image and mount it nodev and nosuid). A FUSE
// mount lives as long as the returned Mounted's server (see mounter).
//
// In a SHA-512 repository the image's SHA-512 digest is checked here, and
// the mount checks the SHA-256 digest of the same bytes; per-file digests
// are SHA-512 ones, which overlayfs checks as it does SHA-256 ones.
func (r *Repo) Mount(name, target string, opts mount.Options) (*mounter.Mounted, error) {
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	d, err := r.Resolve(name)
	if err != nil {
		return nil, err
	}
	return r.mountImage(d, target, opts)
}

// MountImage is [Repo.Mount] for the image linked as images/DIGEST, d,
// and for no reference: a name taken from somewhere that must name exactly
// this image (a kernel command line) is never looked up among the
// references. An image that is not there is an error wrapping ErrNotFound.
func (r *Repo) MountImage(d digest.Digest, target string, opts mount.Options) (*mounter.Mounted, error) {
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if d.Algorithm() != r.alg {
		return nil, fmt.Errorf("%w: image %s is a %s digest, the repository's are %s", ErrNotFound, d, d.Algorithm(), r.alg)
	}
	if err := r.checkImageLink(d); err != nil {
		return nil, err
	}
	return r.mountImage(d, target, opts)
}

// mountImage mounts the image d; the caller holds the lock.
func (r *Repo) mountImage(d digest.Digest, target string, opts mount.Options) (*mounter.Mounted, error) {
	path := r.ObjectPath(d)
	opts.Basedirs = []string{r.ObjectsDir()}
	if opts.Notice == nil {
		opts.Notice = r.opts.Notice
	}
	switch r.alg {
	case fsverity.SHA256:
		opts.ExpectedDigest = d.Hex()
	default:
		// Check the image's own digest here, and have mount check the
		// SHA-256 digest of the same content, which it knows how to.
		sha256, err := r.verifyImageFile(path, d)
		if err != nil {
			return nil, err
		}
		opts.ExpectedDigest = fsverity.Hex(sha256)
	}
	return mounter.Mount(path, target, opts)
}

// verifyImageFile checks that the file at path has the repository digest
// d, and returns its SHA-256 fs-verity digest, computed from the same read.
func (r *Repo) verifyImageFile(path string, d digest.Digest) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	defer f.Close()
	h := fsverity.New(r.alg)
	h256 := fsverity.New(fsverity.SHA256)
	if _, err := io.Copy(io.MultiWriter(h, h256), f); err != nil {
		return nil, fmt.Errorf("repo: reading %s: %w", path, err)
	}
	if got := h.Sum(nil); !d.Equal(r.alg, got) {
		return nil, fmt.Errorf("%w: image %s has digest %s", ErrCorrupt, d, fsverity.Hex(got))
	}
	return h256.Sum(nil), nil
}
