package oci

import (
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzTOC reads an arbitrary zstd:chunked table of contents as a pull
// from an untrusted registry would: a JSON document compressed into the
// skippable frame its annotations point at (checksum and sizes right, so
// the content is what gets parsed), or, with raw, arbitrary bytes as the
// frame (the decompressor's turn). Whatever files a TOC yields must lie in
// order before the TOC, and the ranges fetched for them must cover
// exactly the blob's bytes before the TOC that are not content the
// repository has.
func FuzzTOC(f *testing.F) {
	d := sha256Hash([]byte("x")).String()
	f.Add([]byte(`{"version":1,"entries":[{"type":"dir","name":"a/"},{"type":"reg","name":"a/x","size":1,"digest":"`+d+`","offset":10,"endOffset":20},{"type":"reg","name":"a/empty"}]}`), false, int64(100), uint8(1))
	f.Add([]byte(`{"version":1,"entries":[{"type":"reg","name":"a","size":5,"digest":"`+d+`","offset":0,"endOffset":50},{"type":"reg","name":"b","size":5,"digest":"`+d+`","offset":50,"endOffset":60}]}`), false, int64(60), uint8(2))
	f.Add([]byte(`{"version":1,"entries":[{"type":"reg","name":"a","size":1,"digest":"`+d+`","offset":10,"endOffset":20},{"type":"reg","name":"b","size":1,"digest":"`+d+`","offset":15,"endOffset":30}]}`), false, int64(100), uint8(0))
	f.Add([]byte(`{"version":2,"entries":[]}`), false, int64(10), uint8(0))
	f.Add([]byte("\x28\xb5\x2f\xfd\x00\x48\x00\x00"), true, int64(100), uint8(0))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, raw bool, limit int64, local uint8) {
		var frame []byte
		if raw {
			frame = binary.LittleEndian.AppendUint32(nil, 0x184d2a50)
			frame = binary.LittleEndian.AppendUint32(frame, uint32(len(data)))
			frame = append(frame, data...)
		} else {
			z := enc.EncodeAll(data, nil)
			frame = binary.LittleEndian.AppendUint32(nil, 0x184d2a50)
			frame = binary.LittleEndian.AppendUint32(frame, uint32(len(z)))
			frame = append(frame, z...)
		}
		body := frame[skippableHeader:]
		ref := chunkedTOCRef{offset: max(limit, 0) + skippableHeader, length: int64(len(body)), size: int64(len(data)), checksum: sha256Hash(body)}
		toc, err := parseTOC(ref, frame)
		if err != nil {
			return
		}
		limit = max(limit, 0)
		files, err := toc.files(limit)
		if err != nil {
			return
		}
		checkTOCFiles(t, files, limit, local)
	})
}

// checkTOCFiles checks the files a TOC yielded (those whose index has
// bit i%8 of local set counting as the repository's), and the ranges a
// partial pull would fetch for them.
func checkTOCFiles(t *testing.T, files []chunkedFile, limit int64, local uint8) {
	var last int64
	for i := range files {
		f := &files[i]
		if f.offset < last || f.end <= f.offset || f.end > limit || f.size < 0 {
			t.Fatalf("file %q at %d-%d (size %d): after %d, before the TOC at %d?", f.name, f.offset, f.end, f.size, last, limit)
		}
		last = f.end
		if local&(1<<(i%8)) != 0 {
			f.local = &localContent{}
		}
	}
	rs := chunkedRanges(files, limit)
	fetched := make(map[int64]bool)
	var pos int64
	for _, r := range rs {
		if r.start < pos || r.end <= r.start || r.end > limit {
			t.Fatalf("range %d-%d after %d, before %d: %v", r.start, r.end, pos, limit, rs)
		}
		pos = r.end
		if limit <= 1<<12 {
			for b := r.start; b < r.end; b++ {
				fetched[b] = true
			}
		}
	}
	if limit > 1<<12 {
		return
	}
	// Byte by byte: fetched unless it is the content of a local file.
	for b := int64(0); b < limit; b++ {
		want := true
		for _, f := range files {
			if f.local != nil && b >= f.offset && b < f.end {
				want = false
			}
		}
		if fetched[b] != want {
			t.Fatalf("byte %d fetched %v, want %v (files %+v, ranges %v)", b, fetched[b], want, files, rs)
		}
	}
}
