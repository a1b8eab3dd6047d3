package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// A Writer adds objects to the store. Each object is written to an
// unnamed file (O_TMPFILE; where the file system lacks it, a named file
// in the temporary directory) while the fs-verity digest of the very
// bytes written is computed; it is named by that digest (an expected
// digest that differs is an error), made read-only and given fs-verity
// where it can be, then queued. Queued objects are published in batches:
// the batch's content is made durable (syncfs), then each object is
// linked under its name. An object the store has already is dropped.
//
// Flush publishes what is queued, Sync also makes the names durable: only
// then may something that refers to the objects be created. A crash never
// leaves a partial object under a name.
//
// Nothing here keeps a garbage collector from removing an object found
// present or just linked: the caller excludes it (a repository holds its
// lock). A Writer's methods may be called from several goroutines at
// once; those of a File from one.
type Writer struct {
	s        *Store
	progress func(int64)
	hashers  sync.Pool // of *fsverity.Hasher, for Put

	flushMu sync.Mutex // serializes publications
	mu      sync.Mutex
	pending []pendingObject
	queued  map[digest.Digest]bool // names in pending
	err     error                  // a failed publication; later ones are refused
	sigs    map[digest.Digest][]byte

	// Publication ahead (FlushAhead), under mu but bg.
	ahead        int64 // bytes queued that start one, 0 for never
	pendingBytes int64 // content bytes in pending
	bgBusy       bool  // one is under way
	bg           sync.WaitGroup

	// Counters, under mu.
	newObjects int
	written    int64

	// Files of unknown digest PutFile found the store had, or not: when
	// it mostly has them, a large file is hashed before it is copied.
	present, absent atomic.Int64

	names nameIndex // what the store lacks, found without a lookup
}

type pendingObject struct {
	t *tmpFile
	d digest.Digest
}

// NewWriter returns a writer of objects into the store. progress, when
// not nil, is told of every byte of content stored or found present.
// Call Sync when done, or Abort to drop what is not published.
func (s *Store) NewWriter(progress func(n int64)) *Writer {
	return &Writer{s: s, progress: progress}
}

// Store returns the store the writer adds to.
func (w *Writer) Store() *Store { return w.s }

// Stats returns the number of objects the writer has queued that the
// store did not have, and the bytes of their content.
func (w *Writer) Stats() (newObjects int, written int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.newObjects, w.written
}

func (w *Writer) add(n int64) {
	if w.progress != nil && n > 0 {
		w.progress(n)
	}
}

// A File is one object being written from a stream. Its content is
// written sparsely: zeros are not written, so that every aligned
// 4096-byte block of zeros is a hole.
type File struct {
	w   *Writer
	t   *tmpFile
	h   *fsverity.Hasher
	off int64 // bytes written so far
	end int64 // the file's size on disk (the last byte written, before extend)
}

// Create starts a new object.
func (w *Writer) Create() (*File, error) {
	if w.s.opts.ReadOnly {
		return nil, fmt.Errorf("%w: %s", ErrReadOnly, w.s.Dir())
	}
	t, err := w.s.newTmpFile()
	if err != nil {
		return nil, err
	}
	return &File{w: w, t: t, h: fsverity.New(w.s.alg)}, nil
}

// Write adds p to the object's content.
func (f *File) Write(p []byte) (int, error) {
	f.h.Write(p)
	n, err := f.writeSparse(p)
	f.w.add(int64(n))
	if err == nil && n < len(p) {
		err = fmt.Errorf("store: short write")
	}
	return n, err
}

// zeroBuf is zeros, to compare content with and to write holes from.
var zeroBuf [64 << 10]byte

// writeSparse writes p at f.off, leaving holes where it has zeros, one
// aligned 4096-byte block (or part of one) at a time.
func (f *File) writeSparse(p []byte) (int, error) {
	const bs = fsverity.BlockSize
	done, run := 0, 0 // p[run:done] is data not yet written
	for done < len(p) {
		pos := f.off + int64(done)
		k := min(len(p)-done, bs-int(pos%bs))
		// Zeros need not be written: what is not written of the file
		// reads as zeros (a hole, or the end extend adds).
		if bytes.Equal(p[done:done+k], zeroBuf[:k]) {
			if err := f.writeRun(p[run:done], f.off+int64(run)); err != nil {
				return run, err
			}
			run = done + k
		}
		done += k
	}
	if err := f.writeRun(p[run:done], f.off+int64(run)); err != nil {
		return run, err
	}
	f.off += int64(len(p))
	return len(p), nil
}

func (f *File) writeRun(p []byte, at int64) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := f.t.f.WriteAt(p, at); err != nil {
		return fmt.Errorf("store: writing an object: %w", err)
	}
	f.end = max(f.end, at+int64(len(p)))
	return nil
}

// extend gives the file its full size when it ends in a hole.
func (f *File) extend() error {
	if f.end < f.off {
		if err := f.t.f.Truncate(f.off); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		f.end = f.off
	}
	return nil
}

// Size returns the bytes written so far.
func (f *File) Size() int64 { return f.off }

// ReadAt reads back what was written (an image is read back to check it
// before it is committed).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := f.extend(); err != nil {
		return 0, err
	}
	return f.t.f.ReadAt(p, off)
}

// Abort drops the object.
func (f *File) Abort() { f.t.discard() }

// Commit ends the object and queues it for publication (or drops it if
// the store has it already). It returns the digest of the content
// written, the object's name.
func (f *File) Commit() (digest.Digest, error) {
	d, _, err := f.CommitAs(digest.Digest{})
	return d, err
}

// CommitAs is Commit for content expected to have the digest want (when
// not zero): other content is dropped, and the error wraps ErrCorrupt.
// isNew is false when the store had the object already.
func (f *File) CommitAs(want digest.Digest) (d digest.Digest, isNew bool, err error) {
	if err := f.extend(); err != nil {
		f.Abort()
		return digest.Digest{}, false, err
	}
	d = digest.MustNew(f.w.s.alg, f.h.Sum(nil))
	if !want.IsZero() && want != d {
		f.Abort()
		return digest.Digest{}, false, fmt.Errorf("%w: content has digest %s, expected %s", ErrCorrupt, d, want)
	}
	isNew, err = f.w.queue(f.t, d, f.off)
	return d, isNew, err
}

// SetSignature gives the object d, if this writer stores it, the
// fs-verity builtin signature sig (see fsverity.EnableSigned), which the
// kernel then checks against its .fs-verity keyring. An object the store
// has already keeps what it has.
func (w *Writer) SetSignature(d digest.Digest, sig []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sigs == nil {
		w.sigs = make(map[digest.Digest][]byte)
	}
	w.sigs[d] = sig
}

// queue queues t, whose content has the digest d, for publication, or
// drops it if the store has it already (isNew false).
func (w *Writer) queue(t *tmpFile, d digest.Digest, size int64) (isNew bool, err error) {
	if ok, err := w.has(d); ok || err != nil {
		t.discard()
		return false, err
	}
	return w.enqueue(t, d, size)
}

// enqueue is queue for an object the store was just found to lack.
func (w *Writer) enqueue(t *tmpFile, d digest.Digest, size int64) (isNew bool, err error) {
	s := w.s
	w.mu.Lock()
	sig := w.sigs[d]
	w.mu.Unlock()
	if err := s.finish(t, d.Bytes(), !s.opts.NoVerity || s.opts.RequireVerity, sig); err != nil {
		t.discard()
		return false, err
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		t.discard()
		return false, w.err
	}
	if w.queued[d] { // the same content, from another file
		w.mu.Unlock()
		t.discard()
		return false, nil
	}
	if w.queued == nil {
		w.queued = make(map[digest.Digest]bool)
	}
	w.queued[d] = true
	w.pending = append(w.pending, pendingObject{t: t, d: d})
	w.newObjects++
	w.written += size
	w.pendingBytes += size
	full := len(w.pending) >= s.opts.Batch
	if !full && w.ahead > 0 && w.pendingBytes >= w.ahead && !w.bgBusy {
		w.bgBusy = true
		w.bg.Add(1)
		go w.flushBehind()
	}
	w.mu.Unlock()
	if full {
		if err := w.Flush(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Put stores data as an object, unless the store has it (data is hashed
// first, and written only if needed), and returns its digest.
func (w *Writer) Put(data []byte) (digest.Digest, error) {
	d, _, err := w.put(data)
	return d, err
}

// put is Put, telling whether the object is new.
func (w *Writer) put(data []byte) (digest.Digest, bool, error) {
	h, _ := w.hashers.Get().(*fsverity.Hasher)
	if h == nil {
		h = fsverity.New(w.s.alg)
	}
	h.Reset()
	h.Write(data)
	d := digest.MustNew(w.s.alg, h.Sum(nil))
	w.hashers.Put(h)
	if ok, err := w.has(d); err != nil {
		return digest.Digest{}, false, err
	} else if ok {
		w.add(int64(len(data)))
		return d, false, nil
	}
	f, err := w.Create()
	if err != nil {
		return digest.Digest{}, false, err
	}
	// The very bytes hashed are written.
	_, err = f.writeSparse(data)
	if err == nil {
		err = f.extend()
	}
	if err != nil {
		f.Abort()
		return digest.Digest{}, false, err
	}
	w.add(int64(len(data)))
	isNew, err := w.enqueue(f.t, d, f.off)
	return d, isNew, err
}

// Flush publishes the objects queued so far: their content made durable
// first (syncfs), then their names created. When it returns, every
// object committed before it was called has its name, whoever published
// it; the names become durable with the next Flush or Sync. After a
// failed publication the writer refuses everything.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	pending, err := w.pending, w.err
	w.pending, w.queued, w.pendingBytes = nil, nil, 0
	w.mu.Unlock()
	defer func() {
		for _, p := range pending {
			p.t.discard()
		}
	}()
	if err != nil || len(pending) == 0 {
		return err
	}
	if err := w.s.Sync(); err != nil {
		return w.fail(err)
	}
	for _, p := range pending {
		rel := p.d.ObjectPath()
		dir, err := w.s.fanout(rel[:2])
		if err == nil {
			err = p.t.link(dir, rel[3:])
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return w.fail(fmt.Errorf("store: publishing an object: %w", err))
		}
		w.names.linked(p.d)
	}
	return nil
}

// has is Store.Has, told by the writer's index when the store certainly
// lacks d (nameIndex).
func (w *Writer) has(d digest.Digest) (bool, error) {
	if w.names.absent(w.s, d) {
		return false, nil
	}
	return w.s.Has(d)
}

// FlushAhead makes the writer publish what is queued in the background
// (as Flush does: made durable, then named) each time n bytes of content
// are queued, one publication at a time: the content is written to disk
// while the caller computes more, instead of all at the end, when the
// last Flush or Sync waits for it. n 0 turns it off. A failure is
// returned by the next Flush or Sync (and refuses what follows).
func (w *Writer) FlushAhead(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ahead = n
}

// flushBehind is FlushAhead's publication.
func (w *Writer) flushBehind() {
	defer w.bg.Done()
	w.Flush() // an error is kept in w.err
	w.mu.Lock()
	w.bgBusy = false
	w.mu.Unlock()
}

// fail records the first publication failure: later ones are refused.
func (w *Writer) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Sync publishes what is queued and makes every name durable (and
// everything else written to the store's file system).
func (w *Writer) Sync() error {
	w.bg.Wait()
	if err := w.Flush(); err != nil {
		return err
	}
	return w.s.Sync()
}

// Abort drops the objects queued but not published.
func (w *Writer) Abort() {
	w.bg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pending {
		p.t.discard()
	}
	w.pending, w.queued = nil, nil
}
