package splitstream

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
)

func TestRoundTrip(t *testing.T) {
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		objects := map[string][]byte{}
		put := func(data []byte) []byte {
			d := fsverity.Sum(data, alg)
			objects[string(d)] = data
			return d
		}
		var want bytes.Buffer
		w := NewWriter(alg, TarLayer)
		write := func(p []byte) {
			w.Write(p)
			want.Write(p)
		}
		obj := func(data []byte) {
			if err := w.WriteObject(put(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			want.Write(data)
		}
		write([]byte("header"))
		obj(bytes.Repeat([]byte("a"), 5000))
		write(make([]byte, 3*maxInlineChunk+17)) // split into several chunks
		obj(bytes.Repeat([]byte("b"), 100))
		obj(bytes.Repeat([]byte("a"), 5000)) // same object again
		obj(nil)                             // an empty object
		write([]byte("trailer"))
		extra := put([]byte("not part of the content"))
		w.AddObjectRef(extra)
		sref := fsverity.Sum([]byte("another stream"), alg)
		w.AddStreamRef(sref)
		var ss bytes.Buffer
		if _, err := w.Finish(&ss, sha256.Sum256(want.Bytes())); err != nil {
			t.Fatal(err)
		}
		if ss.Len() > 10000 {
			t.Errorf("%s: stream of %d bytes: zeros not compressed", alg, ss.Len())
		}

		h, err := ReadHeader(bytes.NewReader(ss.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if h.Algorithm != alg || h.ContentType != TarLayer || h.Size != uint64(want.Len()) ||
			len(h.Objects) != 4 || len(h.Streams) != 1 || !bytes.Equal(h.Streams[0], sref) ||
			!bytes.Equal(h.Objects[3], extra) {
			t.Fatalf("%s: header %+v", alg, h)
		}

		r, err := NewReader(bytes.NewReader(ss.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		err = r.Cat(&got, func(d []byte) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(objects[string(d)])), nil
		})
		r.Close()
		if err != nil || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s: Cat: %v, %d bytes, want %d", alg, err, got.Len(), want.Len())
		}

		// A wrong object is caught.
		r, _ = NewReader(bytes.NewReader(ss.Bytes()))
		err = r.Cat(io.Discard, func(d []byte) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(bytes.ToUpper(objects[string(d)]))), nil
		})
		r.Close()
		if !errors.Is(err, ErrContent) {
			t.Errorf("%s: corrupt object: %v", alg, err)
		}
	}
}

func TestBadStreams(t *testing.T) {
	w := NewWriter(fsverity.SHA256, OCIImage)
	w.Write([]byte("{}"))
	var ss bytes.Buffer
	w.Finish(&ss, sha256.Sum256([]byte("{}")))
	good := ss.Bytes()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:10],
		"magic":     append([]byte("GOCFS-SS"), good[8:]...),
		"version":   append(append(append([]byte{}, good[:8]...), 9), good[9:]...),
		"algorithm": append(append(append([]byte{}, good[:9]...), 7), good[10:]...),
		"refs":      append(append(append([]byte{}, good[:60]...), 5, 0, 0, 0), good[64:]...),
	} {
		if _, err := NewReader(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Truncated chunks.
	r, err := NewReader(bytes.NewReader(good[:len(good)-3]))
	if err == nil {
		_, err = r.Next()
		r.Close()
	}
	if err == nil {
		t.Errorf("truncated stream read")
	}
	// A wrong SHA-256.
	r, _ = NewReader(bytes.NewReader(good))
	var out bytes.Buffer
	if err := r.Cat(&out, nil); err != nil || out.String() != "{}" {
		t.Errorf("good stream: %v %q", err, out.String())
	}
	bad := append([]byte{}, good...)
	bad[30] ^= 1
	r, _ = NewReader(bytes.NewReader(bad))
	if err := r.Cat(io.Discard, nil); !errors.Is(err, ErrContent) {
		t.Errorf("wrong sha256: %v", err)
	}
}

// FuzzReader checks that no input makes a reader panic or allocate
// without bound.
func FuzzReader(f *testing.F) {
	w := NewWriter(fsverity.SHA256, TarLayer)
	w.Write([]byte("inline"))
	w.WriteObject(fsverity.Sum([]byte("x"), fsverity.SHA256), 1)
	w.AddStreamRef(make([]byte, 32))
	var ss bytes.Buffer
	w.Finish(&ss, [32]byte{})
	f.Add(ss.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		defer r.Close()
		r.Cat(io.Discard, func(d []byte) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader([]byte("x"))), nil
		})
	})
}
