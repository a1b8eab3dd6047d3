package splitstream

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// sampleStream is a configuration-like stream: named refs, an object, inline
// data around it.
func sampleStream(t testing.TB) ([]byte, map[digest.Digest][]byte) {
	w := newWriter(t, ContentTypeOCIConfig)
	must(t, w.AddNamedStreamRef("sha256:layer1", dg("l1")))
	must(t, w.AddNamedStreamRef("composefs.image", dg("img")))
	objects := map[digest.Digest][]byte{dg("o"): []byte("object content")}
	w.Write([]byte("before "))
	must(t, w.WriteExternal(dg("o"), uint64(len(objects[dg("o")]))))
	w.Write([]byte(" after"))
	return finish(t, w), objects
}

func TestReaderOptions(t *testing.T) {
	b, _ := sampleStream(t)
	open := func(opts ...Option) error {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), opts...)
		if err == nil {
			r.Close()
		}
		return err
	}
	if err := open(WithAlgorithm(fsverity.SHA256), WithContentType(ContentTypeOCIConfig)); err != nil {
		t.Fatal(err)
	}
	if err := open(WithAlgorithm(fsverity.SHA512)); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("WithAlgorithm(SHA512) = %v", err)
	}
	if err := open(WithContentType(ContentTypeOCILayer)); !errors.Is(err, ErrContentType) ||
		!strings.Contains(err.Error(), "ociconfg, want ocilayer") {
		t.Errorf("WithContentType(layer) = %v", err)
	}
}

func TestReaderAccessors(t *testing.T) {
	b, _ := sampleStream(t)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Algorithm() != fsverity.SHA256 || r.OldLayout() || r.StreamSize() != 27 || r.ContentType() != ContentTypeOCIConfig {
		t.Errorf("alg %s old %v size %d type %s", r.Algorithm(), r.OldLayout(), r.StreamSize(), r.ContentType())
	}
	if got := r.StreamRefs(); !slices.Equal(got, []digest.Digest{dg("l1"), dg("img")}) {
		t.Errorf("StreamRefs %v", got)
	}
	if got := r.ObjectRefs(); !slices.Equal(got, []digest.Digest{dg("o")}) {
		t.Errorf("ObjectRefs %v", got)
	}
	want := []NamedRef{{"composefs.image", 1, dg("img")}, {"sha256:layer1", 0, dg("l1")}}
	if got := r.NamedRefs(); !slices.Equal(got, want) {
		t.Errorf("NamedRefs %v", got)
	}
	if d, ok := r.NamedRef("sha256:layer1"); !ok || d != dg("l1") {
		t.Errorf("NamedRef = %v, %v", d, ok)
	}
	if _, ok := r.NamedRef("nope"); ok {
		t.Error("NamedRef(nope) found")
	}
	in := r.Info()
	if in.StreamRefs != (Range{112, 176}) || in.ObjectRefs != (Range{176, 208}) || in.NamedRefs.Start != 208 ||
		in.Stream.Start != in.NamedRefs.End || in.Stream.End != uint64(len(b)) {
		t.Errorf("Info %+v", in)
	}
}

// recordingReaderAt remembers the ranges read.
type recordingReaderAt struct {
	r     io.ReaderAt
	reads []Range
}

func (rr *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rr.reads = append(rr.reads, Range{uint64(off), uint64(off) + uint64(len(p))})
	return rr.r.ReadAt(p, off)
}

// TestReaderRefsOnly: NewReader, the garbage collector's path, reads no
// byte of the chunk stream; a corrupt stream only shows when it is read.
func TestReaderRefsOnly(t *testing.T) {
	b, _ := sampleStream(t)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	stream := r.Info().Stream
	r.Close()
	for i := stream.Start; i < stream.End; i++ {
		b[i] = 0xee
	}
	rec := &recordingReaderAt{r: bytes.NewReader(b)}
	r, err = NewReader(rec, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, rd := range rec.reads {
		if rd.Start < stream.End && stream.Start < rd.End {
			t.Errorf("NewReader read %s, in the stream section %s", rd, stream)
		}
	}
	if len(r.ObjectRefs()) != 1 || len(r.NamedRefs()) != 2 {
		t.Error("refs missing")
	}
	if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Next over a corrupt stream = %v", err)
	}
}

// TestReaderChunks walks the chunks with Next and Read, leaving part of an
// inline chunk unread.
func TestReaderChunks(t *testing.T) {
	b, _ := sampleStream(t)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !c.Inline {
			got = append(got, "object "+c.Object.Hex()[:8])
			if n, err := r.Read(make([]byte, 4)); n != 0 || err != io.EOF {
				t.Errorf("Read on an external chunk = %d, %v", n, err)
			}
			continue
		}
		p := make([]byte, 3) // read only 3 bytes of each inline chunk
		n, err := io.ReadFull(r, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p[:n]))
	}
	if want := []string{"bef", "object " + dg("o").Hex()[:8], " af"}; !slices.Equal(got, want) {
		t.Errorf("chunks %q, want %q", got, want)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after the end = %v", err)
	}
	if _, err := r.Reassemble(io.Discard, nil); err == nil {
		t.Error("Reassemble after Next accepted")
	}
}

func TestReassembleOpenError(t *testing.T) {
	b, _ := sampleStream(t)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Reassemble(io.Discard, openFrom(nil))
	if err == nil || !strings.Contains(err.Error(), dg("o").Hex()) {
		t.Errorf("Reassemble with a missing object = %v", err)
	}
}

func TestReaderClose(t *testing.T) {
	b, _ := sampleStream(t)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after Close = %v", err)
	}
}
