package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

// ReadDir reads the directory src into the tree a repository of algorithm
// alg would make an image of (cfsctl's compute-id and create-dumpfile,
// which store nothing): every regular file whose content is not inline
// carries the fs-verity digest (made with alg) that its object would be
// named by, and that object's path as payload. SHA-256 digests are those
// the scan computes; other algorithms' are measured by the kernel where
// the file has fs-verity with alg, else computed. opts.Store must be nil.
func ReadDir(ctx context.Context, src string, alg fsverity.Algorithm, opts scan.Options) (*tree.Node, error) {
	if !alg.Valid() {
		return nil, fmt.Errorf("%w: algorithm %v", ErrUnsupported, alg)
	}
	if opts.Store != nil {
		return nil, fmt.Errorf("repo: ReadDir computes digests itself (scan.Options.Store must be nil)")
	}
	if alg != fsverity.SHA256 {
		opts.Store = func(f *os.File, size int64) (digest.Digest, error) { return measure(f, alg, size) }
	}
	root, err := scan.DirContext(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("repo: %s is not a directory", src)
	}
	return root, nil
}

// measure returns f's fs-verity digest made with alg, checking that f
// still has the size the scan found.
func measure(f *os.File, alg fsverity.Algorithm, size int64) (digest.Digest, error) {
	d, _, err := fsverity.MeasureOrCompute(f, alg)
	if err != nil {
		return digest.Digest{}, err
	}
	st, err := f.Stat()
	if err != nil {
		return digest.Digest{}, err
	}
	if st.Size() != size {
		return digest.Digest{}, fmt.Errorf("file changed size while being read (%d bytes, then %d)", size, st.Size())
	}
	return digest.New(alg, d)
}

// ImageID returns the fs-verity digest, made with alg, of the image of
// root written with opts: the name a repository of that algorithm gives
// the image (its digest under images/). root's files must carry digests
// and payloads of that algorithm (ReadDir's tree does).
func ImageID(root *tree.Node, alg fsverity.Algorithm, opts image.Options) (digest.Digest, error) {
	if !alg.Valid() {
		return digest.Digest{}, fmt.Errorf("%w: algorithm %v", ErrUnsupported, alg)
	}
	h := fsverity.New(alg)
	if err := image.Write(h, root, opts); err != nil {
		return digest.Digest{}, err
	}
	return digest.New(alg, h.Sum(nil))
}

// CreateImageEdited is CreateImage with edit applied to the tree read
// from src before anything is stored: files edit removes are not stored,
// metadata it changes is the image's. A nil edit changes nothing.
func (r *Repo) CreateImageEdited(ctx context.Context, src, name string, opts CreateOptions, edit func(*tree.Node) error) (*ImportResult, error) {
	if err := r.checkWrite(name); err != nil {
		return nil, err
	}
	sopts := opts.Scan
	if sopts.Threads <= 0 {
		sopts.Threads = r.opts.Threads
	}
	ownCache := false
	if sopts.Cache == nil && sopts.Store == nil {
		sopts.Cache = r.digestCache()
		ownCache = sopts.Cache != nil
	}
	sopts.Algorithm = r.alg
	p := r.startProgress("scanning "+src, -1, false)
	root, err := scan.DirContext(ctx, src, sopts)
	p.finish()
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("repo: %s is not a directory", src)
	}
	if edit != nil {
		if err := edit(root); err != nil {
			return nil, fmt.Errorf("repo: %s: %w", src, err)
		}
	}
	res, err := r.CommitTree(ctx, root, src, name, opts)
	if err == nil && ownCache {
		if err := sopts.Cache.Save(); err != nil {
			r.notice("digest cache not saved: %v", err)
		}
	}
	return res, err
}

// DigestCacheFile is the repository's digest cache (scan.DigestCache), a
// gocfs file that composefs-rs ignores: CreateImage does not read again
// the files of a source directory unchanged since it last stored them.
const DigestCacheFile = "gocfs-digest-cache"

// digestCache opens the repository's digest cache, or returns nil (with a
// notice) when it cannot be read.
func (r *Repo) digestCache() *scan.DigestCache {
	c, err := scan.OpenDigestCache(filepath.Join(r.dir, DigestCacheFile), r.alg)
	if err != nil {
		r.notice("digest cache not used: %v", err)
		return nil
	}
	if c.Discarded != "" {
		r.notice("digest cache rebuilt: %s", c.Discarded)
	}
	return c
}

// TreeImageID returns the digest that CommitTree would give the image of
// root (whose files name their objects by payload), storing nothing: the
// files get the per-file digests their objects' names say, as CommitTree
// gives them, and the image is written in the repository's format.
func (r *Repo) TreeImageID(root *tree.Node) (digest.Digest, error) {
	if _, err := r.collectFiles(root, false); err != nil {
		return digest.Digest{}, err
	}
	opts, err := r.imageOptions(nil)
	if err != nil {
		return digest.Digest{}, err
	}
	return ImageID(root, r.alg, opts)
}
