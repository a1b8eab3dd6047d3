package repo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
)

// ImportResult says what an import did.
type ImportResult struct {
	// Image is the image's fs-verity digest, in hex: its name under
	// images/ (and, in a SHA-256 repository, mount's digest= value).
	Image string `json:"image"`
	// Ref is the reference set to the image, if any.
	Ref string `json:"ref,omitempty"`
	// Objects counts the objects the image refers to, NewObjects those
	// of them the import added.
	Objects    int `json:"objects"`
	NewObjects int `json:"new_objects"`
	// BytesWritten counts the content written: new objects and the image.
	BytesWritten int64 `json:"bytes_written"`
	// Digest is the image's digest.
	Digest digest.Digest `json:"-"`
}

// CreateOptions control CreateImage and CommitTree.
type CreateOptions struct {
	// Scan says how CreateImage reads a source directory (its Threads
	// defaults to the repository's).
	Scan scan.Options
	// Image selects the image format; nil means image.DefaultOptions (as
	// mkcomposefs).
	Image *image.Options
	// Locked says that the caller holds the repository lock (Repo.Lock,
	// shared) already, as a package that adds objects by itself does
	// until its image is linked: the lock is not taken again (which
	// could deadlock with a garbage collection waiting for it).
	Locked bool
	// Signatures are fs-verity builtin signatures of objects (the image's,
	// by the digest it will have), which the kernel checks when fs-verity
	// is enabled on them (store.Writer.SetSignature).
	Signatures map[digest.Digest][]byte
}

// ImageOptions returns the options of the images the repository makes:
// those of its EROFS version (meta.json's erofs_formats).
func (r *Repo) ImageOptions() (image.Options, error) { return r.imageOptions(nil) }

// imageOptions returns the image options to use: opts if not nil, else
// those of the repository's EROFS version (meta.json's erofs_formats; a
// repository without it gets mkcomposefs's defaults, as gocfs wrote them).
func (r *Repo) imageOptions(opts *image.Options) (image.Options, error) {
	if opts != nil {
		return *opts, nil
	}
	if r.meta.ErofsFormats == nil {
		return image.DefaultOptions, nil
	}
	switch v := r.meta.ErofsFormats.Default; v {
	case 0:
		return image.DefaultOptions, nil
	case 1:
		return image.Options{MinVersion: 1, MaxVersion: 1}, nil
	default:
		return image.Options{}, fmt.Errorf("%w: the repository's images are EROFS version %d (meta.json erofs_formats), which gocfs does not write", ErrUnsupported, v)
	}
}

// CreateImage stores the directory tree at src in the repository: every
// file's content as an object, then the image, linked as images/DIGEST and,
// with name, as images/refs/NAME. The image is the one mkcomposefs makes of
// src with the same options (in a SHA-256 repository, byte for byte).
func (r *Repo) CreateImage(ctx context.Context, src, name string, opts CreateOptions) (*ImportResult, error) {
	return r.CreateImageEdited(ctx, src, name, opts, nil)
}

// CreateImageFromDump stores the image described by a composefs-dump(5)
// file. Every regular file it lists with external content must name an
// object the repository has (its payload, "XX/REST"); the error for those
// that are missing is a *MissingObjectsError. In a SHA-512 repository the
// dump's per-file (SHA-256) digests are dropped.
func (r *Repo) CreateImageFromDump(ctx context.Context, rd io.Reader, name string, opts CreateOptions) (*ImportResult, error) {
	if err := r.checkWrite(name); err != nil {
		return nil, err
	}
	root, err := dump.Parse(rd, dump.Options{})
	if err != nil {
		return nil, err
	}
	return r.CommitTree(ctx, root, "", name, opts)
}

// CommitTree stores the image of root. With srcDir set, the content of each
// regular file that is not inline is read from srcDir plus the file's path
// in the tree and stored as an object (checked against the file's Digest
// when set); root's Payload and Digest fields are set to the objects'
// path and, in a SHA-256 repository, digest (in a SHA-512 repository
// Digest is cleared: see the package documentation). Without srcDir, the
// objects must be in the repository already. name, if not empty, is set
// to the image.
//
// Objects are durable before the image is linked, and the image before the
// reference. The repository lock is held shared throughout (taken here
// unless opts.Locked), so garbage collection waits.
func (r *Repo) CommitTree(ctx context.Context, root *tree.Node, srcDir, name string, opts CreateOptions) (_ *ImportResult, retErr error) {
	if err := r.checkWrite(name); err != nil {
		return nil, err
	}
	if !opts.Locked {
		unlock, err := r.Lock(ctx, false)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	files, err := r.collectFiles(root, srcDir != "")
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += int64(f.nodes[0].Size)
	}
	p := r.startProgress("storing objects", total, true)
	w := r.newObjWriter(p)
	defer func() {
		if retErr != nil {
			w.Abort()
		}
	}()
	for d, sig := range opts.Signatures {
		w.SetSignature(d, sig)
	}
	if srcDir != "" {
		err = r.storeFiles(ctx, w, files, srcDir)
	} else {
		err = r.checkPresent(files)
	}
	p.finish()
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Ref: name, Objects: countObjects(files)}
	res.NewObjects, _ = w.Stats() // the image is not counted
	iopts, err := r.imageOptions(opts.Image)
	if err != nil {
		return nil, err
	}
	if res.Digest, err = writeImage(w, root, iopts); err != nil {
		return nil, err
	}
	_, res.BytesWritten = w.Stats()
	if err := r.publish(res.Digest, name); err != nil {
		return nil, err
	}
	res.Image = res.Digest.Hex()
	return res, nil
}

// countObjects counts the distinct objects of files.
func countObjects(files []*fileObject) int {
	objects := make(map[string]bool)
	for _, f := range files {
		objects[f.nodes[0].Payload] = true
	}
	return len(objects)
}

// writeImage stores the image of root as an object, and makes it and
// every object w wrote durable under their names.
func writeImage(w *store.Writer, root *tree.Node, opts image.Options) (digest.Digest, error) {
	s, err := w.Create()
	if err != nil {
		return digest.Digest{}, err
	}
	if err := image.Write(s, root, opts); err != nil {
		s.Abort()
		return digest.Digest{}, err
	}
	d, err := s.Commit()
	if err != nil {
		return digest.Digest{}, err
	}
	return d, w.Sync()
}

func (r *Repo) checkWrite(name string) error {
	if err := r.writable(); err != nil {
		return err
	}
	if name != "" {
		return CheckRefName(name)
	}
	return nil
}

// fileObject is one object of a tree: the nodes (regular files, not hard
// links) that have that content.
type fileObject struct {
	nodes []*tree.Node
	path  string        // the first node's path in the tree
	want  digest.Digest // expected digest, zero if not known
}

// hasObject reports whether n is a regular file whose content is an object.
func hasObject(n *tree.Node) bool {
	return n.LinkTo == nil && n.IsRegular() && n.Content == nil && n.Size > 0
}

// collectFiles lists the objects root needs. With content (read from a
// source directory), files with the same known digest are grouped;
// without, every payload must be an object path of the repository.
func (r *Repo) collectFiles(root *tree.Node, content bool) ([]*fileObject, error) {
	var files []*fileObject
	byDigest := make(map[digest.Digest]*fileObject)
	err := root.Walk(func(p string, n *tree.Node) error {
		if !hasObject(n) {
			return nil
		}
		want, err := r.expectedObject(p, n, content)
		if err != nil {
			return err
		}
		if want.IsZero() {
			files = append(files, &fileObject{nodes: []*tree.Node{n}, path: p})
			return nil
		}
		if f := byDigest[want]; f != nil {
			f.nodes = append(f.nodes, n)
			return nil
		}
		f := &fileObject{nodes: []*tree.Node{n}, path: p, want: want}
		byDigest[want] = f
		files = append(files, f)
		return nil
	})
	return files, err
}

// expectedObject returns the object file n, at p, should have: with
// content (read from a source directory), the digest the scan found if it
// is of the repository's algorithm (zero if not known); without, the one
// its payload names, or its digest (SHA-256 repositories).
func (r *Repo) expectedObject(p string, n *tree.Node, content bool) (digest.Digest, error) {
	sha256 := r.alg == fsverity.SHA256 && len(n.Digest) == fsverity.SHA256.Size()
	switch {
	case content && len(n.Digest) == r.alg.Size(): // the scan's, made with r.alg
		return digest.MustNew(r.alg, n.Digest), nil
	case content:
		return digest.Digest{}, nil
	case n.Payload != "":
		d, err := r.ParseObjectRel(n.Payload)
		if err != nil {
			return digest.Digest{}, fmt.Errorf("repo: %s: %w", p, err)
		}
		if len(n.Digest) == r.alg.Size() && !d.Equal(r.alg, n.Digest) {
			return digest.Digest{}, fmt.Errorf("repo: %s: digest %s does not match its object %s", p, fsverity.Hex(n.Digest), n.Payload)
		}
		if r.alg != fsverity.SHA256 {
			// The object's name is its digest: the image carries it, so
			// that overlayfs can check the object (a SHA-256 image keeps
			// what its input said, as mkcomposefs does).
			n.Digest = d.Bytes()
		}
		return d, nil
	case sha256:
		d := digest.MustNew(r.alg, n.Digest)
		n.Payload = d.ObjectPath()
		return d, nil
	}
	return digest.Digest{}, fmt.Errorf("repo: %s: a %d-byte file with neither inline content nor an object path (payload)", p, n.Size)
}

// storeFiles copies the files' content from srcDir into objects, in
// parallel, and points the nodes at them. A file whose content is not
// what the scan found is read once more, then an error naming it.
func (r *Repo) storeFiles(ctx context.Context, w *store.Writer, files []*fileObject, srcDir string) error {
	threads := r.opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(threads)
	for _, f := range files {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			src := filepath.Join(srcDir, filepath.FromSlash(strings.TrimPrefix(f.path, "/")))
			d, _, err := w.ImportFile(store.Source{Path: src, Digest: f.want, Size: int64(f.nodes[0].Size)})
			if err != nil {
				return fmt.Errorf("repo: %w", err)
			}
			for _, n := range f.nodes {
				n.Payload = d.ObjectPath()
				n.Digest = d.Bytes()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// MissingObject is an object an image refers to that the repository does
// not have.
type MissingObject struct {
	Object string   `json:"object"` // hex digest
	Files  []string `json:"files"`  // the image's files that have it as content
}

// MissingObjectsError lists the objects an image needs that the repository
// lacks. It wraps ErrMissingObjects.
type MissingObjectsError struct {
	Missing []MissingObject
}

// Error lists the missing objects (the first 20) and the files that have
// them as content.
func (e *MissingObjectsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "repo: the image refers to %d object(s) the repository does not have:", len(e.Missing))
	for i, m := range e.Missing {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Missing)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s (%s)", m.Object, strings.Join(m.Files, ", "))
	}
	return b.String()
}

// Unwrap returns ErrMissingObjects.
func (e *MissingObjectsError) Unwrap() error { return ErrMissingObjects }

// checkPresent checks that every object is in the repository, on every
// CPU (it is the last step of a pull or an import, with nothing else to
// overlap it).
func (r *Repo) checkPresent(files []*fileObject) error {
	present := make([]bool, len(files))
	var g errgroup.Group
	workers := runtime.NumCPU()
	for w := range workers {
		g.Go(func() error {
			for i := w; i < len(files); i += workers {
				ok, err := r.st.Has(files[i].want)
				if err != nil {
					return fmt.Errorf("repo: %w", err)
				}
				present[i] = ok
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var missing []MissingObject
	for i, f := range files {
		if present[i] {
			continue
		}
		var paths []string
		for _, n := range f.nodes {
			paths = append(paths, n.Path())
		}
		missing = append(missing, MissingObject{Object: f.want.Hex(), Files: paths})
	}
	if len(missing) > 0 {
		sort.Slice(missing, func(i, j int) bool { return missing[i].Object < missing[j].Object })
		return &MissingObjectsError{Missing: missing}
	}
	return nil
}

// ImportImage stores a composefs image read from rd, after checking that
// it is one and that the repository has every object it refers to (the
// error for those missing is a *MissingObjectsError). name, if not empty,
// is set to the image.
func (r *Repo) ImportImage(ctx context.Context, rd io.Reader, name string) (_ *ImportResult, retErr error) {
	if err := r.checkWrite(name); err != nil {
		return nil, err
	}
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p := r.startProgress("reading the image", -1, true)
	w := r.newObjWriter(p)
	defer func() {
		if retErr != nil {
			w.Abort()
		}
	}()
	s, err := w.Create()
	if err != nil {
		p.finish()
		return nil, err
	}
	_, err = io.Copy(s, onlyReader{ctxReader{ctx, rd}})
	p.finish()
	if err != nil {
		s.Abort()
		return nil, fmt.Errorf("repo: reading the image: %w", err)
	}
	files, err := r.checkImage(s)
	if err != nil {
		s.Abort()
		return nil, err
	}
	d, err := s.Commit()
	if err == nil {
		err = w.Sync()
	}
	if err == nil {
		err = r.publish(d, name)
	}
	if err != nil {
		return nil, err
	}
	_, written := w.Stats()
	return &ImportResult{Image: d.Hex(), Ref: name, Digest: d, Objects: len(files), BytesWritten: written}, nil
}

// checkImage checks that the image being stored as s reads as a
// composefs image and that the repository has every object it refers to.
func (r *Repo) checkImage(s *store.File) ([]*fileObject, error) {
	root, err := image.Read(s, s.Size(), image.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	files, err := r.collectFiles(root, false)
	if err != nil {
		return nil, err
	}
	return files, r.checkPresent(files)
}

// onlyReader hides WriterTo so that io.Copy goes through the object's
// Write.
type onlyReader struct{ io.Reader }

// ctxReader stops reading when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// publish links a stored image under images/ and, with name, the
// reference, then makes it durable. The image link is made durable before
// the reference is set, so that after a crash a reference never names a
// missing image.
func (r *Repo) publish(d digest.Digest, name string) error {
	if err := r.linkImage(d); err != nil {
		return err
	}
	if name == "" {
		return r.sync()
	}
	if err := r.sync(); err != nil {
		return err
	}
	if err := r.setRef(name, d); err != nil {
		return err
	}
	return r.sync()
}
