package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A memTail hands the reader the very bytes written, whether they are
// written (Write) or read into its buffers (buffer, commit), in pieces of
// any size, and ends with io.EOF once the download finished well; the
// queue is bounded: the writer waits, and says so once (full).
func TestMemTailData(t *testing.T) {
	data := randBytes(3, memAhead*3+12345)
	fulls := 0
	mt := newMemTail(context.Background(), func() { fulls++ })
	go func() {
		for off, i := 0, 0; off < len(data); i++ {
			k := min(len(data)-off, 1+(i*7919)%(300<<10))
			if i%2 == 0 {
				if _, err := mt.Write(data[off : off+k]); err != nil {
					mt.finish(err)
					return
				}
			} else {
				b, err := mt.buffer()
				if err != nil {
					mt.finish(err)
					return
				}
				k = copy(b, data[off:off+k])
				mt.commit(k)
			}
			off += k
		}
		mt.finish(nil)
	}()
	r := mt.reader(10 * time.Second)
	time.Sleep(100 * time.Millisecond) // the writer fills the queue
	var got bytes.Buffer
	buf := make([]byte, 100_000)
	for {
		n, err := r.Read(buf[:1+len(got.Bytes())%len(buf)])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, not the %d written", got.Len(), len(data))
	}
	if fulls != 1 {
		t.Errorf("full called %d times, want once", fulls)
	}
}

// A reader that waits longer than its limit gives up, and so does the
// writer then; a download's error reaches the reader after what was
// queued before it.
func TestMemTailGiveUp(t *testing.T) {
	mt := newMemTail(context.Background(), nil)
	mt.Write([]byte("abc"))
	r := mt.reader(50 * time.Millisecond)
	buf := make([]byte, 10)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	start := time.Now()
	if _, err := r.Read(buf); !errors.Is(err, errTailGaveUp) {
		t.Fatalf("stalled read: %v, want errTailGaveUp", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("gave up after %s", el)
	}
	if _, err := mt.Write([]byte("d")); !errors.Is(err, errTailGaveUp) {
		t.Errorf("write after the reader gave up: %v", err)
	}
	if !mt.abandoned() {
		t.Error("not abandoned")
	}

	mt = newMemTail(context.Background(), nil)
	mt.Write([]byte("xy"))
	failed := errors.New("digest mismatch")
	mt.finish(failed)
	r = mt.reader(time.Second)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if _, err := r.Read(buf); err != failed {
		t.Errorf("read after a failed download: %v", err)
	}
}

// A download that starts over (reset) ends the reader: what it read is
// gone, so it can't go on.
func TestMemTailReset(t *testing.T) {
	mt := newMemTail(context.Background(), nil)
	mt.Write([]byte("abc"))
	r := mt.reader(time.Second)
	buf := make([]byte, 2)
	r.Read(buf)
	if err := mt.reset(); !errors.Is(err, errTailGaveUp) {
		t.Errorf("reset: %v", err)
	}
	if _, err := r.Read(buf); !errors.Is(err, errTailGaveUp) {
		t.Errorf("read after reset: %v", err)
	}
}

// A writer waiting for room stops when its context ends.
func TestMemTailWriterCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	mt := newMemTail(ctx, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := mt.Write(make([]byte, memAhead+1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer waits on")
	}
}
