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

// objWriter adds objects to the repository. Objects are written to unnamed
// files, then published in batches: the batch's content is made durable
// (syncfs), then each object is linked under its name. finish publishes the
// last batch and makes the names durable; only then may an image that
// refers to the objects be linked under images/.
type objWriter struct {
	r        *Repo
	progress *progressor

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

func (r *Repo) newObjWriter(progress *progressor) *objWriter {
	return &objWriter{r: r, progress: progress}
}

// objStream is one object being written.
type objStream struct {
	w *objWriter
	t *tmpFile
	h *fsverity.Hasher
	n int64
}

// create starts a new object.
func (w *objWriter) create() (*objStream, error) {
	t, err := newTmpFile(w.r.ObjectsDir(), filepath.Join(w.r.dir, tmpDir))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	return &objStream{w: w, t: t, h: fsverity.New(w.r.alg)}, nil
}

// Write adds p to the object's content.
func (s *objStream) Write(p []byte) (int, error) {
	n, err := s.t.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	s.w.progress.add(int64(n))
	return n, err
}

// abort drops the object.
func (s *objStream) abort() { s.t.discard() }

// commit ends the object and queues it for publication. With want set,
// the content must have that digest. It returns the object's digest and
// whether it is new (false when the repository has it already).
func (s *objStream) commit(want []byte) (digest []byte, isNew bool, err error) {
	w, r := s.w, s.w.r
	digest = s.h.Sum(nil)
	if want != nil && !bytes.Equal(want, digest) {
		s.abort()
		return nil, false, fmt.Errorf("%w: content has digest %s, expected %s", ErrCorrupt, fsverity.Hex(digest), fsverity.Hex(want))
	}
	final := r.ObjectPath(digest)
	if ok, err := r.checkExisting(final, digest); ok || err != nil {
		s.abort()
		return digest, false, err
	}
	if err := s.t.readOnly(); err != nil {
		s.abort()
		return nil, false, fmt.Errorf("repo: %w", err)
	}
	if !r.opts.NoVerity || r.secure {
		if err := r.enableVerity(s.t.f, digest); err != nil {
			s.abort()
			return nil, false, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		s.abort()
		return nil, false, w.err
	}
	if w.queued[final] { // the same content, from another file
		s.abort()
		return digest, false, nil
	}
	if w.queued == nil {
		w.queued = make(map[string]bool)
	}
	w.queued[final] = true
	w.pending = append(w.pending, pendingObject{t: s.t, final: final})
	w.newObjects++
	w.written += s.n
	if len(w.pending) >= maxPending {
		if err := w.flushLocked(); err != nil {
			return nil, false, err
		}
	}
	return digest, true, nil
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
func (w *objWriter) writeFile(path string, want []byte, size int64, buf []byte) (digest []byte, isNew bool, err error) {
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
	s, err := w.create()
	if err != nil {
		return nil, false, err
	}
	if _, err := io.CopyBuffer(s, onlyReader{f}, buf); err != nil {
		s.abort()
		return nil, false, fmt.Errorf("repo: copying %s: %w", path, err)
	}
	if size >= 0 && s.n != size {
		s.abort()
		return nil, false, fmt.Errorf("repo: %s changed size while being imported (%d bytes, then %d)", path, size, s.n)
	}
	digest, isNew, err = s.commit(want)
	if err != nil && errors.Is(err, ErrCorrupt) && want != nil {
		return nil, false, fmt.Errorf("repo: %s changed while being imported: %w", path, err)
	}
	return digest, isNew, err
}

// onlyReader hides WriterTo/ReadFrom so that io.CopyBuffer goes through
// objStream.Write.
type onlyReader struct{ io.Reader }

// flushLocked publishes the pending objects: content made durable first,
// then names. w.mu is held.
func (w *objWriter) flushLocked() error {
	if len(w.pending) == 0 {
		return w.err
	}
	pending := w.pending
	w.pending, w.queued = nil, nil
	defer func() {
		for _, p := range pending {
			p.t.discard()
		}
	}()
	if err := w.r.sync(); err != nil {
		w.err = err
		return err
	}
	for _, p := range pending {
		if err := p.t.link(p.final); err != nil && !errors.Is(err, fs.ErrExist) {
			w.err = fmt.Errorf("repo: publishing object: %w", err)
			return w.err
		}
	}
	return nil
}

// finish publishes what is pending and makes every name durable.
func (w *objWriter) finish() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil {
		return err
	}
	return w.r.sync()
}

// abort drops what is pending.
func (w *objWriter) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pending {
		p.t.discard()
	}
	w.pending, w.queued = nil, nil
}
