package splitstream

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
)

// hostileBase is a valid stream: inline "hi", then object a (5 bytes).
func hostileBase() craft {
	return craft{
		objectRefs: dg("a").Bytes(),
		stream:     zst(cat(inlineChunk("hi"), extChunk(0))),
		size:       7,
	}
}

var hostileObjects = map[digest.Digest][]byte{dg("a"): []byte("01234")}

// withNamed is hostileBase with one stream ref and the given named refs
// section.
func withNamed(named []byte) []byte {
	c := hostileBase()
	c.streamRefs = dg("s").Bytes()
	c.named = named
	return c.bytes()
}

func withStream(stream []byte, size uint64) []byte {
	c := hostileBase()
	c.stream = stream
	c.size = size
	return c.bytes()
}

func mutate(f func(b []byte) []byte) []byte { return f(hostileBase().bytes()) }

// hugeWindowFrame is a zstd frame whose header asks for a 64 MiB window
// (which klauspost/compress would allocate, its own limit being 512 MiB),
// holding data as one raw block.
func hugeWindowFrame(data []byte) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (26 - 10) << 3}
	h := uint32(len(data))<<3 | 1 // raw, last
	return append(append(b, byte(h), byte(h>>8), byte(h>>16)), data...)
}

// Each hostile file is refused with its sentinel, when opened ("open") or
// when its chunks are read ("read"), without a panic.
var hostile = []struct {
	name  string
	file  []byte
	size  int64 // the size to claim, if not len(file)
	stage string
	want  error
}{
	{"empty file", nil, 0, "open", ErrNotSplitStream},
	{"31 bytes", hostileBase().bytes()[:31], 0, "open", ErrNotSplitStream},
	{"bad magic", mutate(func(b []byte) []byte { b[0] = 's'; return b }), 0, "open", ErrNotSplitStream},
	{"version 1", mutate(func(b []byte) []byte { b[11] = 1; return b }), 0, "open", ErrVersion},
	{"algorithm 0", mutate(func(b []byte) []byte { b[14] = 0; return b }), 0, "open", ErrAlgorithm},
	{"algorithm 3", mutate(func(b []byte) []byte { b[14] = 3; return b }), 0, "open", ErrAlgorithm},
	{"lg_blocksize 16", mutate(func(b []byte) []byte { b[15] = 16; return b }), 0, "open", ErrBlockSize},
	{"truncated file", mutate(func(b []byte) []byte { return b[:len(b)-3] }), 0, "open", ErrCorrupt},
	{"info reversed", mutate(func(b []byte) []byte { put64(b, 16, 112); put64(b, 24, 32); return b }), 0, "open", ErrCorrupt},
	{"info short", mutate(func(b []byte) []byte { put64(b, 24, 32+79); return b }), 0, "open", ErrCorrupt},
	{"info past end", mutate(func(b []byte) []byte { put64(b, 24, 1<<40); return b }), 0, "open", ErrCorrupt},
	{"object refs negative length", mutate(func(b []byte) []byte { put64(b, cObjectRefs+8, 111); return b }), 0, "open", ErrCorrupt},
	{"object refs partial digest", craft{objectRefs: make([]byte, 33), stream: zst(nil)}.bytes(), 0, "open", ErrCorrupt},
	{"object refs huge count", mutate(func(b []byte) []byte { put64(b, cObjectRefs+8, 1<<62); return b }), 0, "open", ErrCorrupt},
	{"range beyond int64", mutate(func(b []byte) []byte { put64(b, cObjectRefs, 1<<63); put64(b, cObjectRefs+8, 1<<63+32); return b }), 0, "open", ErrCorrupt},
	{"object refs overlap stream refs", func() []byte {
		c := hostileBase()
		c.streamRefs = dg("s").Bytes()
		b := c.bytes()
		put64(b, cObjectRefs, 112)
		put64(b, cObjectRefs+8, 144)
		return b
	}(), 0, "open", ErrCorrupt},
	{"stream overlaps header", mutate(func(b []byte) []byte { put64(b, cStream, 0); return b }), 0, "open", ErrCorrupt},
	{"stream overlaps object refs", mutate(func(b []byte) []byte { put64(b, cStream, 112); return b }), 0, "open", ErrCorrupt},
	{"named refs overlap info", mutate(func(b []byte) []byte { put64(b, cNamedRefs, 40); put64(b, cNamedRefs+8, 60); return b }), 0, "open", ErrCorrupt},
	{"file shorter than its size", mutate(func(b []byte) []byte {
		put64(b, cNamedRefs, uint64(len(b)))
		put64(b, cNamedRefs+8, uint64(len(b))+50)
		return b
	}), 1 << 20, "open", ErrCorrupt},
	{"stream shorter than its size", mutate(func(b []byte) []byte {
		put64(b, cStream+8, uint64(len(b))+50)
		return b
	}), 1 << 20, "read", ErrCorrupt},
	{"named ref without NUL", withNamed(zst([]byte("0:x"))), 0, "open", ErrCorrupt},
	{"named ref trailing junk", withNamed(zst([]byte("0:x\x000:y"))), 0, "open", ErrCorrupt},
	{"named ref without colon", withNamed(zst([]byte("0x\x00"))), 0, "open", ErrCorrupt},
	{"named ref index not a number", withNamed(zst([]byte("x:n\x00"))), 0, "open", ErrCorrupt},
	{"named ref index negative", withNamed(zst([]byte("-1:n\x00"))), 0, "open", ErrCorrupt},
	{"named ref index empty", withNamed(zst([]byte(":n\x00"))), 0, "open", ErrCorrupt},
	{"named ref index two signs", withNamed(zst([]byte("++0:n\x00"))), 0, "open", ErrCorrupt},
	{"named ref index overflows", withNamed(zst([]byte("99999999999999999999999:n\x00"))), 0, "open", ErrCorrupt},
	{"named ref index out of range", withNamed(zst([]byte("1:n\x00"))), 0, "open", ErrCorrupt},
	{"named ref not UTF-8", withNamed(zst([]byte("0:\xff\x00"))), 0, "open", ErrCorrupt},
	{"named refs not zstd", withNamed([]byte("not zstd at all")), 0, "open", ErrCorrupt},
	{"named refs truncated zstd", withNamed(zst([]byte("0:abc\x00"))[:8]), 0, "open", ErrCorrupt},
	{"named refs bomb", withNamed(zst(bytes.Repeat([]byte("0:"+strings.Repeat("a", 1000)+"\x00"), 5000))), 0, "open", ErrLimit},
	{"named refs window 64 MiB", withNamed(hugeWindowFrame([]byte("0:n\x00"))), 0, "open", ErrLimit},
	{"chunk index out of range", withStream(zst(extChunk(1)), 5), 0, "read", ErrCorrupt},
	{"inline length overflow", withStream(zst(cat(extChunk(-(1<<62)), []byte("abc"))), 3), 0, "read", ErrSize},
	{"inline length MinInt64", withStream(zst(extChunk(math.MinInt64)), 3), 0, "read", ErrSize},
	{"inline chunk truncated", withStream(zst(cat(extChunk(-100), []byte("0123456789"))), 100), 0, "read", ErrCorrupt},
	{"partial chunk header", withStream(zst([]byte{1, 2, 3}), 0), 0, "read", ErrCorrupt},
	{"trailing garbage after frame", withStream(cat(zst(inlineChunk("hi")), []byte("garbage!")), 2), 0, "read", ErrCorrupt},
	{"stream not zstd", withStream([]byte("hello, world"), 0), 0, "read", ErrCorrupt},
	{"stream truncated zstd", withStream(zst(bytes.Repeat(inlineChunk("hi"), 100))[:20], 200), 0, "read", ErrCorrupt},
	{"stream window 64 MiB", withStream(hugeWindowFrame(inlineChunk("hi")), 2), 0, "read", ErrLimit},
	{"inline bytes short of stream_size", withStream(zst(inlineChunk("hi")), 5), 0, "read", ErrSize},
	{"object longer than stream_size", withStream(zst(cat(inlineChunk("hi"), extChunk(0))), 4), 0, "read", ErrSize},
	{"object shorter than stream_size", withStream(zst(cat(inlineChunk("hi"), extChunk(0))), 10), 0, "read", ErrSize},
	{"inline after objects past stream_size", withStream(zst(cat(extChunk(0), inlineChunk("hi"))), 6), 0, "read", ErrSize},
}

func TestHostile(t *testing.T) {
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			size := h.size
			if size == 0 {
				size = int64(len(h.file))
			}
			r, err := NewReader(bytes.NewReader(h.file), size)
			if h.stage == "open" {
				if !errors.Is(err, h.want) || r != nil {
					t.Fatalf("NewReader = %v, want %v", err, h.want)
				}
			} else {
				if err != nil {
					t.Fatalf("NewReader: %v", err)
				}
				var out bytes.Buffer
				_, err = r.Reassemble(&out, openFrom(hostileObjects))
				if !errors.Is(err, h.want) {
					t.Fatalf("Reassemble = %v, want %v", err, h.want)
				}
				if uint64(out.Len()) > r.StreamSize() {
					t.Errorf("wrote %d bytes, stream_size %d", out.Len(), r.StreamSize())
				}
				r.Close()
			}
			if !errors.Is(err, fs.ErrInvalid) || !strings.HasPrefix(err.Error(), "splitstream: ") {
				t.Errorf("error %q is not a splitstream fs.ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

// TestNextChecksSizes: Next alone, without Reassemble's own count, refuses
// inline chunks longer than stream_size, and, in a stream without objects,
// inline chunks short of it.
func TestNextChecksSizes(t *testing.T) {
	short := withStream(zst(inlineChunk("hi")), 5)
	r, err := NewReader(bytes.NewReader(short), int64(len(short)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrSize) {
		t.Errorf("Next at the end of a short stream = %v", err)
	}
	r.Close()
	for _, v := range []int64{-(1 << 62), math.MinInt64, -4} {
		b := withStream(zst(cat(extChunk(v), []byte("abc"))), 3)
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); !errors.Is(err, ErrSize) {
			t.Errorf("chunk %d: Next = %v", v, err)
		}
		r.Close()
	}
}

// TestHostileValid: edge cases composefs-rs accepts, which must be
// accepted too.
func TestHostileValid(t *testing.T) {
	base := hostileBase().bytes()
	longInfo := func() []byte { // an info section 16 bytes longer, for a future field
		b := cat(base[:112], make([]byte, 16), base[112:])
		put64(b, 24, 128)
		for _, off := range []int{cStreamRefs, cObjectRefs, cStream, cNamedRefs} {
			put64(b, off, getRange(b[off:]).Start+16)
			put64(b, off+8, getRange(b[off:]).End+16)
		}
		return b
	}()
	cases := map[string][]byte{
		"named ref index with plus": withNamed(zst([]byte("+0:n\x00"))),
		"named ref empty name":      withNamed(zst([]byte("0:\x00"))),
		"named refs section empty":  withNamed(nil),
		"named refs empty frame":    withNamed(zst(nil)),
		"stream section empty":      craft{}.bytes(),
		"old layout":                toOldLayout(t, base),
		"flags set":                 mutate(func(b []byte) []byte { b[12] = 0xff; return b }),
		"info section longer":       longInfo,
		"two zstd frames":           withStream(cat(zst(inlineChunk("hi")), zst(extChunk(0))), 7),
		"unused object ref":         craft{objectRefs: cat(dg("a").Bytes(), dg("b").Bytes()), stream: zst(extChunk(0)), size: 5}.bytes(),
	}
	for name, b := range cases {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Errorf("%s: NewReader: %v", name, err)
			continue
		}
		if _, err := r.Reassemble(io.Discard, openFrom(hostileObjects)); err != nil {
			t.Errorf("%s: Reassemble: %v", name, err)
		}
		r.Close()
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBoundedMemory: a zstd bomb in the stream (one inline chunk of 64 MiB
// from a few kilobytes) streams through in bounded memory, with
// Reassemble and with Next and Read; a named refs bomb stops at the limit.
func TestBoundedMemory(t *testing.T) {
	const size = 64 << 20
	bomb := withStream(zst(cat(extChunk(-size), make([]byte, size))), size)
	t.Logf("bomb: %d bytes", len(bomb))
	var n int64
	var err error
	got := allocated(func() {
		r, _ := NewReader(bytes.NewReader(bomb), int64(len(bomb)))
		n, err = r.Reassemble(io.Discard, nil)
		r.Close()
	})
	if err != nil || n != size {
		t.Fatalf("Reassemble = %d, %v", n, err)
	}
	t.Logf("Reassemble allocated %d bytes", got)
	if got > 24<<20 {
		t.Errorf("Reassemble of a %d-byte bomb allocated %d bytes", len(bomb), got)
	}
	got = allocated(func() {
		r, _ := NewReader(bytes.NewReader(bomb), int64(len(bomb)))
		c, _ := r.Next()
		buf := make([]byte, 1000)
		r.Read(buf)
		_, err = r.Next() // skips the rest of the chunk
		r.Close()
		if !c.Inline || c.Size != size {
			t.Errorf("chunk %+v", c)
		}
	})
	if err != io.EOF || got > 24<<20 {
		t.Errorf("Next over a bomb: %v, allocated %d bytes", err, got)
	}
	named := withNamed(zst(bytes.Repeat([]byte("0:"+strings.Repeat("a", 1<<16)+"\x00"), 1000)))
	got = allocated(func() { _, err = NewReader(bytes.NewReader(named), int64(len(named))) })
	if !errors.Is(err, ErrLimit) || got > 6*MaxNamedRefsSize {
		t.Errorf("named refs bomb: %v, allocated %d bytes", err, got)
	}
}

// errReaderAt fails every read.
type errReaderAt struct{}

var errDisk = errors.New("disk on fire")

func (e errReaderAt) ReadAt(p []byte, off int64) (int, error) { return 0, errDisk }

// TestIOError: an error of the file is reported as such, not as a bad
// split stream.
func TestIOError(t *testing.T) {
	_, err := NewReader(errReaderAt{}, 1000)
	if !errors.Is(err, errDisk) || errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("NewReader = %v", err)
	}
	b := hostileBase().bytes()
	f := &failAfter{data: b, from: int64(getRange(b[cStream:]).Start)}
	r, err := NewReader(f, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.Is(err, errDisk) || errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Next = %v", err)
	}
}

// failAfter reads data but fails any read at or past offset from.
type failAfter struct {
	data []byte
	from int64
}

func (f *failAfter) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.from {
		return 0, errDisk
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}
