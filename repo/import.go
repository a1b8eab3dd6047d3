package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/scan"
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
	// Digest is Image in binary.
	Digest []byte `json:"-"`
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
}

// CreateImage stores the directory tree at src in the repository: every
// file's content as an object, then the image, linked as images/DIGEST and,
// with name, as images/refs/NAME. The image is the one mkcomposefs makes of
// src with the same options (in a SHA-256 repository, byte for byte).
func (r *Repo) CreateImage(ctx context.Context, src, name string, opts CreateOptions) (*ImportResult, error) {
	if err := r.checkWrite(name); err != nil {
		return nil, err
	}
	sopts := opts.Scan
	if sopts.Threads <= 0 {
		sopts.Threads = r.opts.Threads
	}
	p := r.startProgress("scanning "+src, -1, false)
	root, err := scan.DirContext(ctx, src, sopts)
	p.finish()
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("repo: %s is not a directory", src)
	}
	return r.CommitTree(ctx, root, src, name, opts)
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
		unlock, err := r.lock(false)
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
	res := &ImportResult{Ref: name}
	if srcDir != "" {
		if err := r.storeFiles(ctx, w, files, srcDir); err != nil {
			p.finish()
			return nil, err
		}
	} else if err := r.checkPresent(files); err != nil {
		p.finish()
		return nil, err
	}
	p.finish()
	res.NewObjects = w.newObjects // the image is not counted
	objects := make(map[string]bool)
	for _, f := range files {
		objects[f.nodes[0].Payload] = true
	}
	res.Objects = len(objects)

	iopts := image.DefaultOptions
	if opts.Image != nil {
		iopts = *opts.Image
	}
	s, err := w.Create()
	if err != nil {
		return nil, err
	}
	if err := image.Write(s, root, iopts); err != nil {
		s.Abort()
		return nil, err
	}
	digest, _, err := s.commit(nil)
	if err != nil {
		return nil, err
	}
	if err := w.Sync(); err != nil {
		return nil, err
	}
	res.BytesWritten = w.written
	if err := r.publish(digest, name); err != nil {
		return nil, err
	}
	res.Digest, res.Image = digest, fsverity.Hex(digest)
	return res, nil
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
	path  string // the first node's path in the tree
	want  []byte // expected digest, nil if not known
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
	byRel := make(map[string]*fileObject)
	err := root.Walk(func(p string, n *tree.Node) error {
		if !hasObject(n) {
			return nil
		}
		var want []byte
		switch {
		case content && r.alg == fsverity.SHA256 && len(n.Digest) == fsverity.SHA256.Size():
			want = n.Digest
		case content:
		case n.Payload != "":
			d, err := r.ParseObjectRel(n.Payload)
			if err != nil {
				return fmt.Errorf("repo: %s: %w", p, err)
			}
			if len(n.Digest) == r.alg.Size() && !bytes.Equal(n.Digest, d) {
				return fmt.Errorf("repo: %s: digest %s does not match its object %s", p, fsverity.Hex(n.Digest), n.Payload)
			}
			if r.alg != fsverity.SHA256 {
				// The object's name is its digest: the image carries it,
				// so that overlayfs can check the object (a SHA-256 image
				// keeps what its input said, as mkcomposefs does).
				n.Digest = d
			}
			want = d
		case r.alg == fsverity.SHA256 && len(n.Digest) == fsverity.SHA256.Size():
			want = n.Digest
			n.Payload = ObjectRel(want)
		default:
			return fmt.Errorf("repo: %s: a %d-byte file with neither inline content nor an object path (payload)", p, n.Size)
		}
		if want != nil {
			rel := ObjectRel(want)
			if f := byRel[rel]; f != nil {
				f.nodes = append(f.nodes, n)
				return nil
			}
			f := &fileObject{nodes: []*tree.Node{n}, path: p, want: want}
			byRel[rel] = f
			files = append(files, f)
			return nil
		}
		files = append(files, &fileObject{nodes: []*tree.Node{n}, path: p})
		return nil
	})
	return files, err
}

// storeFiles copies the files' content from srcDir into objects, in
// parallel, and points the nodes at them.
func (r *Repo) storeFiles(ctx context.Context, w *ObjectWriter, files []*fileObject, srcDir string) error {
	threads := r.opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(threads, max(len(files), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				mu.Lock()
				if firstErr == nil {
					firstErr = ctx.Err()
				}
				if firstErr != nil || next >= len(files) {
					mu.Unlock()
					return
				}
				f := files[next]
				next++
				mu.Unlock()
				src := filepath.Join(srcDir, filepath.FromSlash(strings.TrimPrefix(f.path, "/")))
				digest, _, err := w.writeFile(src, f.want, int64(f.nodes[0].Size), buf)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				for _, n := range f.nodes {
					n.Payload = ObjectRel(digest)
					n.Digest = digest
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
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

// checkPresent checks that every object is in the repository.
func (r *Repo) checkPresent(files []*fileObject) error {
	var missing []MissingObject
	for _, f := range files {
		if ok, err := r.checkExisting(r.ObjectPath(f.want), f.want); err != nil {
			return err
		} else if !ok {
			var paths []string
			for _, n := range f.nodes {
				paths = append(paths, n.Path())
			}
			missing = append(missing, MissingObject{Object: fsverity.Hex(f.want), Files: paths})
		}
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
	unlock, err := r.lock(false)
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
	root, err := image.Read(s.t.f, s.n, image.ReadOptions{})
	if err != nil {
		s.Abort()
		return nil, fmt.Errorf("repo: %w", err)
	}
	files, err := r.collectFiles(root, false)
	if err == nil {
		err = r.checkPresent(files)
	}
	if err != nil {
		s.Abort()
		return nil, err
	}
	digest, _, err := s.commit(nil)
	if err != nil {
		return nil, err
	}
	if err := w.Sync(); err != nil {
		return nil, err
	}
	if err := r.publish(digest, name); err != nil {
		return nil, err
	}
	return &ImportResult{
		Image: fsverity.Hex(digest), Ref: name, Digest: digest,
		Objects: len(files), BytesWritten: w.written,
	}, nil
}

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
func (r *Repo) publish(digest []byte, name string) error {
	if err := r.linkImage(digest); err != nil {
		return err
	}
	if name == "" {
		return r.sync()
	}
	if err := r.sync(); err != nil {
		return err
	}
	if err := r.setRef(name, digest); err != nil {
		return err
	}
	return r.sync()
}
