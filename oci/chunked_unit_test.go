package oci

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

func TestChunkedRef(t *testing.T) {
	sum := sha256Hash([]byte("toc")).String()
	desc := func(ann map[string]string) v1.Descriptor { return v1.Descriptor{Size: 1000, Annotations: ann} }
	if _, ok, err := chunkedRef(desc(nil)); ok || err != nil {
		t.Errorf("no annotations: ok %v err %v", ok, err)
	}
	for _, prefix := range chunkedAnnotationPrefixes {
		ref, ok, err := chunkedRef(desc(map[string]string{prefix + "manifest-checksum": sum, prefix + "manifest-position": "900:50:200:1"}))
		if !ok || err != nil || ref.offset != 900 || ref.length != 50 || ref.size != 200 {
			t.Errorf("%s: %+v %v %v", prefix, ref, ok, err)
		}
	}
	p := chunkedAnnotationPrefixes[0]
	for _, bad := range []map[string]string{
		{p + "manifest-checksum": "md5:00", p + "manifest-position": "900:50:200:1"},
		{p + "manifest-checksum": sum, p + "manifest-position": "900:50:200"},
		{p + "manifest-checksum": sum, p + "manifest-position": "900:50:200:2"},
		{p + "manifest-checksum": sum, p + "manifest-position": "-1:50:200:1"},
		{p + "manifest-checksum": sum, p + "manifest-position": "990:50:200:1"}, // past the blob's end
		{p + "manifest-checksum": sum, p + "manifest-position": "4:50:200:1"},   // no room for the frame header
		{p + "manifest-checksum": sum, p + "manifest-position": "900:50:999999999999:1"},
		{p + "manifest-position": "900:50:200:1"},
	} {
		if _, ok, err := chunkedRef(desc(bad)); ok || err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// tocFrame returns a TOC's skippable frame and the reference to it, at
// offset off of a blob of size bytes.
func tocFrame(t *testing.T, js string, off int64) ([]byte, chunkedTOCRef) {
	t.Helper()
	ze := must(zstd.NewWriter(nil))
	z := ze.EncodeAll([]byte(js), nil)
	frame := binary.LittleEndian.AppendUint32(nil, 0x184d2a50)
	frame = append(binary.LittleEndian.AppendUint32(frame, uint32(len(z))), z...)
	return frame, chunkedTOCRef{offset: off, length: int64(len(z)), size: int64(len(js)), checksum: sha256Hash(z)}
}

func TestParseTOC(t *testing.T) {
	d := sha256Hash([]byte("x")).String()
	js := `{"version":1,"entries":[{"type":"dir","name":"a/"},{"type":"reg","name":"a/x","size":1,"digest":"` + d + `","offset":10,"endOffset":20},{"type":"reg","name":"a/empty"}]}`
	frame, ref := tocFrame(t, js, 108)
	toc, err := parseTOC(ref, frame)
	if err != nil {
		t.Fatal(err)
	}
	files, err := toc.files(100)
	if err != nil || len(files) != 1 || files[0].name != "a/x" || files[0].offset != 10 || files[0].end != 20 {
		t.Fatalf("files %+v, %v", files, err)
	}
	bad := ref
	bad.checksum = sha256Hash([]byte("other"))
	if _, err := parseTOC(bad, frame); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("TOC with another checksum: %v", err)
	}
	bad = ref
	bad.size++
	if _, err := parseTOC(bad, frame); err == nil {
		t.Error("TOC of another size accepted")
	}
	broken := append([]byte(nil), frame...)
	broken[0] = 0
	if _, err := parseTOC(ref, broken); err == nil {
		t.Error("TOC without its skippable frame header accepted")
	}
}

func TestTOCFilesRefused(t *testing.T) {
	d := sha256Hash([]byte("x")).String()
	entry := func(name, digest string, size, off, end int64) tocEntry {
		return tocEntry{Type: "reg", Name: name, Size: size, Digest: digest, Offset: off, EndOffset: end}
	}
	for name, es := range map[string][]tocEntry{
		"overlap":          {entry("a", d, 1, 10, 20), entry("b", d, 1, 15, 30)},
		"backwards":        {entry("a", d, 1, 30, 40), entry("b", d, 1, 10, 20)},
		"empty range":      {entry("a", d, 1, 10, 10)},
		"past the TOC":     {entry("a", d, 1, 90, 101)},
		"negative size":    {entry("a", d, -1, 10, 20)},
		"digest not sha":   {entry("a", "md5:00", 1, 10, 20)},
		"digest truncated": {entry("a", d[:20], 1, 10, 20)},
	} {
		if _, err := (&toc{Version: 1, Entries: es}).files(100); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestChunkedRanges(t *testing.T) {
	local := &localContent{content: []byte("x")}
	files := []chunkedFile{
		{offset: 10, end: 20},
		{offset: 25, end: 40, local: local},
		{offset: 40, end: 50, local: local},
		{offset: 50, end: 60},
	}
	got := chunkedRanges(files, 70)
	want := []byteRange{{0, 25}, {50, 70}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ranges %v, want %v", got, want)
	}
}

func TestContentRange(t *testing.T) {
	for s, want := range map[string]byteRange{
		"bytes 0-9/100":    {0, 10},
		"bytes 90-99/*":    {90, 100},
		"bytes 5-5/100":    {5, 6},
		"bytes 9-0/100":    {},
		"bytes 90-100/100": {},
		"bytes 0-9/99":     {},
		"items 0-9/100":    {},
		"bytes -1-9/100":   {},
	} {
		got, ok := parseContentRange(s, 100)
		if ok != (want != byteRange{}) || got != want {
			t.Errorf("%q: %v %v, want %v", s, got, ok, want)
		}
	}
	err := covered("blob", []byteRange{{0, 10}, {20, 30}}, []byteRange{{0, 15}})
	if err == nil || !strings.Contains(err.Error(), "20-30") {
		t.Errorf("a missing range: %v", err)
	}
	if err := covered("blob", []byteRange{{0, 10}, {20, 30}}, []byteRange{{18, 40}, {0, 10}}); err != nil {
		t.Error(err)
	}
}
