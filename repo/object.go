package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// maxPending bounds the objects written but not yet named, each holding a
// file descriptor until the batch is made durable and linked. (A variable
// for the tests.)
var maxPending = 256

// An ObjectWriter adds objects to the repository. Each object is written
// to an unnamed file (O_TMPFILE in objects/; where the file system lacks
// it, a named file under tmp/) while its fs-verity digest is computed with
// the repository's algorithm, made read-only and given fs-verity (unless
// Options.NoVerity, and always in a secure repository), then queued.
// Queued objects are published in batches: the batch's content is made
// durable (syncfs), then each object is linked under objects/XX/REST. An
// object the repository has already is dropped.
//
// Flush publishes what is queued, Sync also makes the names durable: only
// then may something that refers to the objects (an image link, a stream
// link) be created. A crash never leaves a partial object under a name.
//
// The caller holds the repository lock (Repo.Lock, shared) from before the
// first object until what refers to them is linked, so that garbage
// collection does not remove objects found present or just linked. Its
// methods may be called from several goroutines at once; those of an
// ObjectFile from one.
type ObjectWriter struct {
	r        *Repo
	progress *progressor
	hashers  sync.Pool // of *fsverity.Hasher, for Put

	flushMu sync.Mutex // serializes publications
	mu      sync.Mutex
	pending []pendingObject
	queued  map[string]bool // final names in pending
	err     error           // a failed publication; later ones are refused

	// Counters, under mu.
	newObjects int
	written    int64
}

type pendingObject struct {
	t     *tmpFile
	final string
}

// NewObjectWriter returns a writer of objects into the repository. Call
// Sync when done, or Abort to drop what is not published.
func (r *Repo) NewObjectWriter() *ObjectWriter { return r.newObjWriter(nil) }

func (r *Repo) newObjWriter(progress *progressor) *ObjectWriter {
	return &ObjectWriter{r: r, progress: progress}
}

// Stats returns the number of objects the writer has queued that the
// repository did not have, and the bytes of their content.
func (w *ObjectWriter) Stats() (newObjects int, written int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.newObjects, w.written
}

// An ObjectFile is one object being written.
type ObjectFile struct {
	w *ObjectWriter
	t *tmpFile
	h *fsverity.Hasher
	n int64
}

// Create starts a new object.
func (w *ObjectWriter) Create() (*ObjectFile, error) {
	if err := w.r.writable(); err != nil {
		return nil, err
	}
	t, err := newTmpFile(w.r.ObjectsDir(), filepath.Join(w.r.dir, tmpDir))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	return &ObjectFile{w: w, t: t, h: fsverity.New(w.r.alg)}, nil
}

// Write adds p to the object's content.
func (s *ObjectFile) Write(p []byte) (int, error) {
	n, err := s.t.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	s.w.progress.add(int64(n))
	return n, err
}

// Abort drops the object.
func (s *ObjectFile) Abort() { s.t.discard() }

// Commit ends the object and queues it for publication (or drops it if the
// repository has it already). It returns the object's digest.
func (s *ObjectFile) Commit() ([]byte, error) {
	d, _, err := s.commit(nil)
	return d, err
}

// commit ends the object and queues it for publication. With want set,
// the content must have that digest. It returns the object's digest and
// whether it is new (false when the repository has it already).
func (s *ObjectFile) commit(want []byte) (digest []byte, isNew bool, err error) {
	digest = s.h.Sum(nil)
	if want != nil && !bytes.Equal(want, digest) {
		s.Abort()
		return nil, false, fmt.Errorf("%w: content has digest %s, expected %s", ErrCorrupt, fsverity.Hex(digest), fsverity.Hex(want))
	}
	isNew, err = s.queue(digest)
	if err != nil {
		return nil, false, err
	}
	return digest, isNew, nil
}

// queue queues the object, whose content has the given digest, for
// publication, or drops it if the repository has it already (isNew
// false).
func (s *ObjectFile) queue(digest []byte) (isNew bool, err error) {
	w, r := s.w, s.w.r
	final := r.ObjectPath(digest)
	if ok, err := r.checkExisting(final, digest); ok || err != nil {
		s.Abort()
		return false, err
	}
	if err := s.t.readOnly(); err != nil {
		s.Abort()
		return false, fmt.Errorf("repo: %w", err)
	}
	if !r.opts.NoVerity || r.secure {
		if err := r.enableVerity(s.t.f, digest); err != nil {
			s.Abort()
			return false, err
		}
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		s.Abort()
		return false, w.err
	}
	if w.queued[final] { // the same content, from another file
		w.mu.Unlock()
		s.Abort()
		return false, nil
	}
	if w.queued == nil {
		w.queued = make(map[string]bool)
	}
	w.queued[final] = true
	w.pending = append(w.pending, pendingObject{t: s.t, final: final})
	w.newObjects++
	w.written += s.n
	full := len(w.pending) >= maxPending
	w.mu.Unlock()
	if full {
		if err := w.Flush(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Put stores data as an object, unless the repository has it (data is
// hashed first, and written only if needed), and returns its digest.
func (w *ObjectWriter) Put(data []byte) ([]byte, error) {
	h, _ := w.hashers.Get().(*fsverity.Hasher)
	if h == nil {
		h = fsverity.New(w.r.alg)
	}
	h.Reset()
	h.Write(data)
	digest := h.Sum(nil)
	w.hashers.Put(h)
	if ok, err := w.r.checkExisting(w.r.ObjectPath(digest), digest); err != nil {
		return nil, err
	} else if ok {
		return digest, nil
	}
	s, err := w.Create()
	if err != nil {
		return nil, err
	}
	if _, err := s.t.f.Write(data); err != nil {
		s.Abort()
		return nil, fmt.Errorf("repo: writing an object: %w", err)
	}
	s.n = int64(len(data))
	if _, err := s.queue(digest); err != nil {
		return nil, err
	}
	return digest, nil
}

// checkExisting reports whether the object is already there. Where the
// kernel has measured it (fs-verity enabled), its digest is checked.
func (r *Repo) checkExisting(final string, digest []byte) (bool, error) {
	f, err := os.Open(final)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("repo: %w", err)
	}
	defer f.Close()
	if alg, got, err := fsverity.Measure(f); err == nil && (alg != r.alg || !bytes.Equal(got, digest)) {
		return true, fmt.Errorf("%w: %s has fs-verity digest %s:%s (run fsck)", ErrCorrupt, final, alg, fsverity.Hex(got))
	}
	return true, nil
}

// enableVerity enables fs-verity on a new object where the file system
// supports it, and checks the kernel's digest. In a secure repository an
// object without fs-verity is an error.
func (r *Repo) enableVerity(f *os.File, digest []byte) error {
	err := fsverity.Enable(f, r.alg)
	if err != nil {
		if r.secure {
			return fmt.Errorf("repo: the repository requires fs-verity on every object (meta.json has it): %w", err)
		}
		return nil
	}
	alg, got, err := fsverity.Measure(f)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if alg != r.alg || !bytes.Equal(got, digest) {
		return fmt.Errorf("%w: the kernel measured %s:%s, computed %s", ErrCorrupt, alg, fsverity.Hex(got), fsverity.Hex(digest))
	}
	return nil
}

// writeFile adds the content of the regular file at path as an object.
// want, when not nil, is the digest the content must have; size, when not
// negative, its size.
func (w *ObjectWriter) writeFile(path string, want []byte, size int64, buf []byte) (digest []byte, isNew bool, err error) {
	if want != nil {
		final := w.r.ObjectPath(want)
		if ok, err := w.r.checkExisting(final, want); ok || err != nil {
			w.progress.add(max(size, 0))
			return want, false, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, false, fmt.Errorf("repo: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, false, fmt.Errorf("repo: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("repo: %s is no longer a regular file", path)
	}
	s, err := w.Create()
	if err != nil {
		return nil, false, err
	}
	if _, err := io.CopyBuffer(s, onlyReader{f}, buf); err != nil {
		s.Abort()
		return nil, false, fmt.Errorf("repo: copying %s: %w", path, err)
	}
	if size >= 0 && s.n != size {
		s.Abort()
		return nil, false, fmt.Errorf("repo: %s changed size while being imported (%d bytes, then %d)", path, size, s.n)
	}
	digest, isNew, err = s.commit(want)
	if err != nil && errors.Is(err, ErrCorrupt) && want != nil {
		return nil, false, fmt.Errorf("repo: %s changed while being imported: %w", path, err)
	}
	return digest, isNew, err
}

// onlyReader hides WriterTo/ReadFrom so that io.CopyBuffer goes through
// ObjectFile.Write.
type onlyReader struct{ io.Reader }

// Flush publishes the objects queued so far: their content made durable
// first (syncfs), then their names created. When it returns, every object
// committed before it was called has its name, whoever published it; the
// names become durable with the next Flush or Sync. After a failed
// publication the writer refuses everything.
func (w *ObjectWriter) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	pending, err := w.pending, w.err
	w.pending, w.queued = nil, nil
	w.mu.Unlock()
	defer func() {
		for _, p := range pending {
			p.t.discard()
		}
	}()
	if err != nil || len(pending) == 0 {
		return err
	}
	if err := w.r.sync(); err != nil {
		return w.fail(err)
	}
	for _, p := range pending {
		if err := p.t.link(p.final); err != nil && !errors.Is(err, fs.ErrExist) {
			return w.fail(fmt.Errorf("repo: publishing object: %w", err))
		}
	}
	return nil
}

// fail records the first publication failure: later ones are refused.
func (w *ObjectWriter) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Sync publishes what is queued and makes every name durable (and
// everything else written to the repository's file system).
func (w *ObjectWriter) Sync() error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.r.sync()
}

// Abort drops the objects queued but not published.
func (w *ObjectWriter) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pending {
		p.t.discard()
	}
	w.pending, w.queued = nil, nil
}
