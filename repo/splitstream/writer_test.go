package splitstream

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// dg returns a made-up SHA-256 digest named by s.
func dg(s string) digest.Digest {
	sum := sha256.Sum256([]byte(s))
	return digest.MustNew(fsverity.SHA256, sum[:])
}

// dg512 returns a made-up SHA-512 digest named by s.
func dg512(s string) digest.Digest {
	sum := sha512.Sum512([]byte(s))
	return digest.MustNew(fsverity.SHA512, sum[:])
}

// finish ends w and returns the file.
func finish(t testing.TB, w *Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := w.Finish(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("Finish returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func newWriter(t testing.TB, ct ContentType) *Writer {
	t.Helper()
	w, err := NewWriter(fsverity.SHA256, ct)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestContentTypes(t *testing.T) {
	// composefs-oci skopeo.rs: u64::from_le_bytes(*b"...").
	for want, ct := range map[string]ContentType{
		"ocilayer": ContentTypeOCILayer, "ociconfg": ContentTypeOCIConfig,
		"ocimanif": ContentTypeOCIManifest, "oci_blob": ContentTypeOCIBlob,
	} {
		if v := binary.LittleEndian.Uint64([]byte(want)); uint64(ct) != v {
			t.Errorf("%s = %#x, want %#x", want, uint64(ct), v)
		}
		if ct.String() != want {
			t.Errorf("String() = %q, want %q", ct.String(), want)
		}
	}
	if s := ContentType(0xdeadbeef).String(); s != "0xdeadbeef" {
		t.Errorf("String() = %q", s)
	}
}

// TestWriterChunks: inline data is gathered until an external chunk or the
// end, object refs are numbered by first use (splitstream.rs write_inline,
// flush_inline, write_reference, UniqueVec::ensure).
func TestWriterChunks(t *testing.T) {
	w := newWriter(t, ContentTypeOCILayer)
	a, b := dg("a"), dg("b")
	w.Write([]byte("he"))
	w.Write(nil)
	w.Write([]byte("llo"))
	must(t, w.WriteExternal(a, 10))
	w.Write([]byte("x"))
	must(t, w.WriteExternal(b, 20))
	must(t, w.WriteExternal(a, 10))
	w.Write([]byte("end"))
	if w.Size() != 5+10+1+20+10+3 {
		t.Errorf("Size() = %d", w.Size())
	}
	f, err := specParse(finish(t, w))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(specChunkList(f))
	if want := `[inline "hello" object 0 inline "x" object 1 object 0 inline "end"]`; got != want {
		t.Errorf("chunks %s, want %s", got, want)
	}
	if !bytes.Equal(bytes.Join(f.ObjectRefs, nil), digestBytes([]digest.Digest{a, b})) {
		t.Error("object refs not in order of first use")
	}
	if f.StreamSize != 49 || f.ContentType != uint64(ContentTypeOCILayer) {
		t.Errorf("stream_size %d content type %#x", f.StreamSize, f.ContentType)
	}
}

func specChunkList(f *specFile) []string {
	var out []string
	for _, c := range f.Chunks {
		if c.Inline != nil {
			out = append(out, fmt.Sprintf("inline %q", c.Inline))
		} else {
			out = append(out, fmt.Sprintf("object %d", c.Index))
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriterLongInlineRun: composefs-rs has no maximum inline chunk; a run
// of 3 MiB written in pieces is one chunk.
func TestWriterLongInlineRun(t *testing.T) {
	w := newWriter(t, 0)
	piece := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for range 48 {
		w.Write(piece)
	}
	f, err := specParse(finish(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Chunks) != 1 || len(f.Chunks[0].Inline) != 48*len(piece) {
		t.Fatalf("%d chunks", len(f.Chunks))
	}
}

// TestWriterNamedRefs: stream refs in order of first naming, records sorted
// by name bytewise, a renamed digest kept as a stream ref (splitstream.rs
// add_named_stream_ref, write_named_refs over a BTreeMap).
func TestWriterNamedRefs(t *testing.T) {
	w := newWriter(t, ContentTypeOCIConfig)
	s1, s2, s3 := dg("s1"), dg("s2"), dg("s3")
	must(t, w.AddNamedStreamRef("z", s1))
	must(t, w.AddNamedStreamRef("B", s2))
	must(t, w.AddNamedStreamRef("é", s1))
	must(t, w.AddNamedStreamRef("a:b", s3))
	must(t, w.AddNamedStreamRef("B", s3)) // s2 loses its only name
	f, err := specParse(finish(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if want := "2:B\x002:a:b\x000:z\x000:é\x00"; string(f.NamedText) != want {
		t.Errorf("named refs %q, want %q", f.NamedText, want)
	}
	if !bytes.Equal(bytes.Join(f.StreamRefs, nil), digestBytes([]digest.Digest{s1, s2, s3})) {
		t.Error("stream refs not in order of first naming, orphan kept")
	}
}

func TestWriterRefuses(t *testing.T) {
	w := newWriter(t, 0)
	for _, name := range []string{"a\x00b", "\xff"} {
		if err := w.AddNamedStreamRef(name, dg("x")); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := w.AddNamedStreamRef("n", dg512("x")); err == nil {
		t.Error("SHA-512 stream ref accepted in a SHA-256 stream")
	}
	if err := w.WriteExternal(dg512("x"), 1); err == nil {
		t.Error("SHA-512 object accepted in a SHA-256 stream")
	}
	if _, err := w.AddObjectRef(dg512("x")); err == nil {
		t.Error("SHA-512 object ref accepted in a SHA-256 stream")
	}
	must(t, w.WriteExternal(dg("a"), math.MaxUint64-1))
	if err := w.WriteExternal(dg("a"), 2); err == nil {
		t.Error("stream size overflow accepted")
	}
	if _, err := NewWriter(fsverity.Algorithm(3), 0); !errors.Is(err, fsverity.ErrUnknownAlgorithm) {
		t.Errorf("NewWriter(alg 3) = %v", err)
	}
	finish(t, w)
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Finish accepted")
	}
	if _, err := w.Finish(&bytes.Buffer{}); err == nil {
		t.Error("second Finish accepted")
	}
}

// TestWriterFrames: every zstd section has libzstd's frame header: magic,
// descriptor 0 (no checksum, no content size), window 2 MiB; or is
// libzstd's empty frame.
func TestWriterFrames(t *testing.T) {
	w := newWriter(t, 0)
	big := make([]byte, 600<<10) // several 128 KiB blocks
	for i := range big {
		big[i] = byte(i * i >> 7)
	}
	w.Write(big)
	b := finish(t, w)
	f, err := specParse(b)
	if err != nil {
		t.Fatal(err)
	}
	stream := b[f.Ranges[2][0]:f.Ranges[2][1]]
	if !bytes.HasPrefix(stream, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}) {
		t.Errorf("stream frame header % x", stream[:6])
	}
	named := b[f.Ranges[3][0]:f.Ranges[3][1]]
	if !bytes.Equal(named, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00}) {
		t.Errorf("empty named refs frame % x", named)
	}
	if !bytes.Equal(f.ChunkBytes[8:], big) {
		t.Error("content differs")
	}
}

// TestWriterRandom writes random sequences of operations and checks the
// file with the spec reader and the Reader against a model of what
// composefs-rs would record.
func TestWriterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		m := randomStream(t, rng)
		b := finish(t, m.w)
		f, err := specParse(b)
		if err != nil {
			t.Fatalf("iteration %d: spec reader: %v", iter, err)
		}
		if err := specLayoutCheck(b, f); err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		if got, want := strings.Join(specChunkList(f), " "), strings.Join(m.chunks, " "); got != want {
			t.Fatalf("iteration %d: chunks\n%s\nwant\n%s", iter, got, want)
		}
		if !bytes.Equal(bytes.Join(f.ObjectRefs, nil), digestBytes(m.objects)) {
			t.Fatalf("iteration %d: object refs", iter)
		}
		c := goldenCase{Name: fmt.Sprint(iter), ContentType: []byte("0")}
		checkReader(t, c.Name, b, c, m.content, m.data)
	}
}

// model is what a random stream should contain.
type model struct {
	w       *Writer
	chunks  []string
	objects []digest.Digest
	data    map[digest.Digest][]byte
	content []byte
}

func randomStream(t *testing.T, rng *rand.Rand) *model {
	m := &model{w: newWriter(t, 0), data: map[digest.Digest][]byte{}}
	index := map[digest.Digest]int{}
	var run []byte
	flush := func() {
		if len(run) > 0 {
			m.chunks = append(m.chunks, fmt.Sprintf("inline %q", run))
			run = nil
		}
	}
	for range rng.IntN(12) {
		if rng.IntN(2) == 0 {
			p := make([]byte, rng.IntN(40))
			for i := range p {
				p[i] = byte(rng.IntN(256))
			}
			m.w.Write(p)
			run = append(run, p...)
			m.content = append(m.content, p...)
			continue
		}
		d := dg(fmt.Sprint(rng.IntN(4)))
		if _, ok := index[d]; !ok {
			index[d] = len(m.objects)
			m.objects = append(m.objects, d)
			m.data[d] = objectContent(d, uint64(rng.IntN(100)))
		}
		must(t, m.w.WriteExternal(d, uint64(len(m.data[d]))))
		flush()
		m.chunks = append(m.chunks, fmt.Sprintf("object %d", index[d]))
		m.content = append(m.content, m.data[d]...)
	}
	flush()
	return m
}
