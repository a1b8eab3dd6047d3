package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// memAhead bounds the bytes of a layer downloaded into memory ahead of its
// import: past it the download waits (the registry's connection with it).
const memAhead = 4 << 20

// memChunk is the size of the buffers a memTail queues.
const memChunk = 256 << 10

// memChunks recycles the buffers of memTails.
var memChunks = sync.Pool{New: func() any { b := make([]byte, 0, memChunk); return &b }}

// errStartedOver: the download of a layer read from memory started over
// (the registry answered a resumed request with the whole blob), so what
// the import read is gone.
var errStartedOver = errors.New("oci: the download started over")

// memTail is a blob being downloaded, handed to the import that reads it
// through a bounded queue in memory: nothing of it is written to disk.
// What the import has read is dropped, so the blob is read once, from its
// start; when the reader gives up (the download stalled), or the download
// starts over, both ends fail with errTailGaveUp, and the caller fetches
// the layer again another way.
type memTail struct {
	ctx context.Context // the download's: a writer waiting for room stops with it
	// full, if not nil, is called when the queue first fills: the
	// import is slower than the download.
	full func()

	mu      sync.Mutex
	chunks  []*[]byte // queued data, oldest first
	head    int       // bytes of chunks[0] read
	queued  int       // bytes queued, not read
	changed chan struct{}
	done    bool
	err     error // the download's, once done
	broken  bool  // the reader gave up or the download started over
}

// readerChecks makes memTail a checkedSink: its one reader is the
// import, whose verifier checks the blob (memLayer).
func (t *memTail) readerChecks() bool { return true }

func newMemTail(ctx context.Context, full func()) *memTail {
	return &memTail{ctx: ctx, full: full, changed: make(chan struct{})}
}

// notify wakes the other end; under mu.
func (t *memTail) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Write queues p, waiting while memAhead bytes are queued.
func (t *memTail) Write(p []byte) (int, error) {
	n := 0
	t.mu.Lock()
	defer t.mu.Unlock()
	for n < len(p) {
		if err := t.waitRoom(); err != nil {
			return n, err
		}
		last := t.lastChunk()
		k := min(len(p)-n, memChunk-len(*last))
		*last = append(*last, p[n:n+k]...)
		n += k
		t.queued += k
		t.notify()
	}
	return n, nil
}

// buffer returns where the download may read its next bytes into, to be
// queued by commit (so that they are not copied), waiting while memAhead
// bytes are queued.
func (t *memTail) buffer() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.waitRoom(); err != nil {
		return nil, err
	}
	last := t.lastChunk()
	return (*last)[len(*last):memChunk], nil
}

// commit queues the first n bytes of what buffer returned.
func (t *memTail) commit(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last := t.chunks[len(t.chunks)-1]
	*last = (*last)[:len(*last)+n]
	t.queued += n
	t.notify()
}

// waitRoom waits, under mu, while memAhead bytes are queued; it fails
// when the reader gave up or the download's context ends.
func (t *memTail) waitRoom() error {
	for t.queued >= memAhead && !t.broken {
		if t.full != nil {
			t.full()
			t.full = nil
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-t.ctx.Done():
			t.mu.Lock()
			return t.ctx.Err()
		}
		t.mu.Lock()
	}
	if t.broken {
		return errTailGaveUp
	}
	return nil
}

// lastChunk returns the chunk to fill, with room left; under mu. (The
// reader keeps the last chunk until it is full, so it stays in place.)
func (t *memTail) lastChunk() *[]byte {
	if k := len(t.chunks); k > 0 && len(*t.chunks[k-1]) < memChunk {
		return t.chunks[k-1]
	}
	c := memChunks.Get().(*[]byte)
	*c = (*c)[:0]
	t.chunks = append(t.chunks, c)
	return c
}

// reset is called when the download starts over: what the import read is
// gone, so the import gives up.
func (t *memTail) reset() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.broken = true
	t.notify()
	return fmt.Errorf("%w: %w", errTailGaveUp, errStartedOver)
}

// finish records the end of the download: err nil means the blob is
// complete and checked.
func (t *memTail) finish(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done, t.err = true, err
	t.notify()
}

// abandoned reports whether the reader gave up or the download started
// over.
func (t *memTail) abandoned() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.broken
}

// reader returns the reader of the blob (there is one): it waits at most
// maxWait for bytes to come, then gives up with errTailGaveUp; it ends
// when the download does: io.EOF once the blob is checked, else the
// download's error.
func (t *memTail) reader(maxWait time.Duration) io.Reader {
	return &memTailReader{t: t, maxWait: maxWait}
}

type memTailReader struct {
	t       *memTail
	maxWait time.Duration
}

func (r *memTailReader) Read(p []byte) (int, error) {
	t := r.t
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		switch {
		case t.broken:
			return 0, errTailGaveUp
		case t.queued > 0:
			return t.take(p), nil
		case t.done && t.err != nil:
			return 0, t.err
		case t.done:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		if timer == nil {
			timer = time.NewTimer(r.maxWait)
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
			t.mu.Lock()
		case <-timer.C:
			t.mu.Lock()
			if t.queued == 0 && !t.done {
				t.broken = true
				t.notify()
			}
		}
	}
}

// take moves queued bytes to p; under mu, with bytes queued.
func (t *memTail) take(p []byte) int {
	n := 0
	for n < len(p) && t.queued > 0 {
		c := t.chunks[0]
		k := copy(p[n:], (*c)[t.head:])
		n += k
		t.head += k
		t.queued -= k
		if t.head == len(*c) && (len(t.chunks) > 1 || len(*c) == memChunk) {
			t.chunks[0] = nil
			t.chunks = t.chunks[1:]
			t.head = 0
			memChunks.Put(c)
		} else if t.head == len(*c) {
			break // the writer is filling it
		}
	}
	t.notify()
	return n
}
