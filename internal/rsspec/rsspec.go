// Package rsspec is an independent reader of composefs-rs's split stream
// format, for tests: written from composefs-rs's description of it rather
// than from package repo/splitstream, it shares no code with that package's
// Reader (it parses a []byte, decompresses whole sections with DecodeAll and
// walks the chunks in memory), so a mistake has to be made twice to pass
// unnoticed. Each fact names its source:
//
//	[fmt] crates/composefs/src/splitstream_format.rs (the format's prose)
//	[ss]  crates/composefs/src/splitstream.rs (structs, const asserts,
//	      SplitStreamWriter::done, SplitStreamReader::new)
//
// Tests run it over every file repo/splitstream's Writer produces, over the
// golden files a third implementation (repo/splitstream/testdata/golden/
// mkgolden.py) wrote, and over every stream gocfs's oci package stores in a
// repository. It assumes well-formed input from a trusted writer: it is not
// a parser for untrusted files.
package rsspec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// File is a split stream as the spec describes it.
type File struct {
	OldHeader   bool
	Version     byte
	Flags       uint16
	Algorithm   byte
	LgBlockSize byte
	Info        [2]uint64    // header.info FileRange
	Ranges      [4][2]uint64 // stream_refs, object_refs, stream, named_refs
	ContentType uint64
	StreamSize  uint64
	StreamRefs  [][]byte
	ObjectRefs  [][]byte
	Named       map[string]int // name -> index into streamRefs
	NamedText   []byte         // the decompressed named refs section
	ChunkBytes  []byte         // the decompressed stream section
	Chunks      []Chunk
}

// Chunk is one chunk of the stream: inline bytes, or (Inline nil) the
// whole content of object Index of the object refs.
type Chunk struct {
	Inline []byte // inline data, or nil
	Index  int64  // object index, for an external chunk
}

// Parse parses b by the spec. It assumes a well-formed file written by
// a trusted writer and only needs to catch such a writer's mistakes.
func Parse(b []byte) (*File, error) {
	le := binary.LittleEndian
	if len(b) < 32 { // [ss] size_of::<SplitstreamHeader>() == 32
		return nil, errors.New("short header")
	}
	f := &File{}
	// [fmt] "magic: [u8; 11] // Contains SPLITSTREAM_MAGIC", b"SplitStream";
	// [ss] repr(C) header: magic 0, version 11, _flags 12, algorithm 14,
	// lg_blocksize 15, info 16.
	if string(b[0:11]) == "SplitStream" {
		f.Version, f.Flags, f.Algorithm, f.LgBlockSize = b[11], le.Uint16(b[12:]), b[14], b[15]
		f.Info = [2]uint64{le.Uint64(b[16:]), le.Uint64(b[24:])}
	} else if string(b[18:29]) == "SplitStream" {
		// [ss] OldSplitstreamHeader const asserts: info 0, _flags 16,
		// magic 18, version 29, algorithm 30, lg_blocksize 31. [ss]
		// SplitStreamReader::new tries this when offset 0 has no magic.
		f.OldHeader = true
		f.Info = [2]uint64{le.Uint64(b[0:]), le.Uint64(b[8:])}
		f.Flags, f.Version, f.Algorithm, f.LgBlockSize = le.Uint16(b[16:]), b[29], b[30], b[31]
	} else {
		return nil, errors.New("no magic")
	}
	// [fmt] version "must always be 0"; algorithm "1 = sha256, 2 =
	// sha512"; [ss] LG_BLOCKSIZE = 12.
	if f.Version != 0 || (f.Algorithm != 1 && f.Algorithm != 2) || f.LgBlockSize != 12 {
		return nil, fmt.Errorf("header version %d algorithm %d lg_blocksize %d", f.Version, f.Algorithm, f.LgBlockSize)
	}
	// [fmt] SplitstreamInfo: four FileRanges {start: U64, end: U64}, then
	// content_type: U64, stream_size: U64, all little-endian. A longer
	// info section is allowed; the extra bytes are ignored.
	if f.Info[1] < f.Info[0] || f.Info[1] > uint64(len(b)) || f.Info[1]-f.Info[0] < 80 {
		return nil, fmt.Errorf("info range %v", f.Info)
	}
	info := b[f.Info[0]:f.Info[1]]
	for i := range f.Ranges {
		f.Ranges[i] = [2]uint64{le.Uint64(info[16*i:]), le.Uint64(info[16*i+8:])}
		if f.Ranges[i][1] < f.Ranges[i][0] || f.Ranges[i][1] > uint64(len(b)) {
			return nil, fmt.Errorf("range %d %v", i, f.Ranges[i])
		}
	}
	f.ContentType, f.StreamSize = le.Uint64(info[64:]), le.Uint64(info[72:])
	if err := f.parseSections(b); err != nil {
		return nil, err
	}
	return f, nil
}

// parseSections reads the reference arrays, the named refs and the chunks.
func (f *File) parseSections(b []byte) error {
	// [fmt] "The number of items in the array is determined by the size of
	// the section divided by the size of the fs-verity hash value".
	hashSize := 32 * int(f.Algorithm)
	section := func(i int) []byte { return b[f.Ranges[i][0]:f.Ranges[i][1]] }
	var err error
	if f.StreamRefs, err = specSplit(section(0), hashSize); err != nil {
		return err
	}
	if f.ObjectRefs, err = specSplit(section(1), hashSize); err != nil {
		return err
	}
	// [fmt] named refs: zstd-compressed, "nul-terminated text records
	// (including a terminator after the last record)", each "n:name".
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	if f.NamedText, err = dec.DecodeAll(section(3), nil); err != nil {
		return fmt.Errorf("named refs: %w", err)
	}
	if err := f.parseNamed(); err != nil {
		return err
	}
	// [fmt] the stream: zstd-compressed chunks, each a little-endian
	// 64-bit value; negative: that many inline bytes follow; non-negative:
	// an index into the object refs. "The stream is over when there are no
	// more chunks."
	if f.ChunkBytes, err = dec.DecodeAll(section(2), nil); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	return f.parseChunks()
}

func specSplit(b []byte, size int) ([][]byte, error) {
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes of %d-byte hashes", len(b), size)
	}
	var out [][]byte
	for i := 0; i < len(b); i += size {
		out = append(out, b[i:i+size])
	}
	return out, nil
}

func (f *File) parseNamed() error {
	f.Named = map[string]int{}
	text := string(f.NamedText)
	if text == "" {
		return nil
	}
	if !strings.HasSuffix(text, "\x00") {
		return errors.New("named refs: no final NUL")
	}
	for _, rec := range strings.Split(strings.TrimSuffix(text, "\x00"), "\x00") {
		idx, name, ok := strings.Cut(rec, ":")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= len(f.StreamRefs) {
			return fmt.Errorf("named ref %q", rec)
		}
		f.Named[name] = n
	}
	return nil
}

func (f *File) parseChunks() error {
	b := f.ChunkBytes
	for len(b) > 0 {
		if len(b) < 8 {
			return errors.New("stream: partial chunk header")
		}
		v := int64(binary.LittleEndian.Uint64(b))
		b = b[8:]
		if v >= 0 {
			if v >= int64(len(f.ObjectRefs)) {
				return fmt.Errorf("stream: index %d of %d", v, len(f.ObjectRefs))
			}
			f.Chunks = append(f.Chunks, Chunk{Index: v})
			continue
		}
		if -v > int64(len(b)) {
			return fmt.Errorf("stream: inline %d bytes, %d left", -v, len(b))
		}
		f.Chunks = append(f.Chunks, Chunk{Inline: b[:-v]})
		b = b[-v:]
	}
	return nil
}

// LayoutCheck checks the layout SplitStreamWriter::done produces ([ss]):
// the header at 0, info right after it (32..112), then the stream refs,
// object refs, named refs and stream, each starting where the previous
// ends, the stream ending the file; version 0, flags 0, lg_blocksize 12.
func LayoutCheck(b []byte, f *File) error {
	want := [2]uint64{32, 112}
	if f.Info != want {
		return fmt.Errorf("info at %v, want %v", f.Info, want)
	}
	order := []int{0, 1, 3, 2} // stream_refs, object_refs, named_refs, stream
	pos := uint64(112)
	for _, i := range order {
		if f.Ranges[i][0] != pos {
			return fmt.Errorf("section %d starts at %d, want %d", i, f.Ranges[i][0], pos)
		}
		pos = f.Ranges[i][1]
	}
	if pos != uint64(len(b)) {
		return fmt.Errorf("stream ends at %d, file at %d", pos, len(b))
	}
	if f.Flags != 0 {
		return fmt.Errorf("flags %#x", f.Flags)
	}
	return nil
}

// Same compares two parsed files in everything but the compressed
// bytes: the header and info fields that do not depend on compressed sizes,
// the reference arrays, the decompressed named refs and chunks.
func Same(a, b *File) error {
	switch {
	case a.OldHeader != b.OldHeader || a.Version != b.Version || a.Flags != b.Flags ||
		a.Algorithm != b.Algorithm || a.LgBlockSize != b.LgBlockSize || a.Info != b.Info:
		return fmt.Errorf("headers differ: %+v / %+v", *a, *b)
	case a.Ranges[0] != b.Ranges[0] || a.Ranges[1] != b.Ranges[1] || a.Ranges[3][0] != b.Ranges[3][0]:
		return fmt.Errorf("uncompressed sections placed differently: %v / %v", a.Ranges, b.Ranges)
	case a.ContentType != b.ContentType || a.StreamSize != b.StreamSize:
		return fmt.Errorf("content type %#x / %#x, stream size %d / %d", a.ContentType, b.ContentType, a.StreamSize, b.StreamSize)
	case !bytes.Equal(bytes.Join(a.StreamRefs, nil), bytes.Join(b.StreamRefs, nil)):
		return errors.New("stream refs differ")
	case !bytes.Equal(bytes.Join(a.ObjectRefs, nil), bytes.Join(b.ObjectRefs, nil)):
		return errors.New("object refs differ")
	case !bytes.Equal(a.NamedText, b.NamedText):
		return fmt.Errorf("named refs differ: %q / %q", a.NamedText, b.NamedText)
	case !bytes.Equal(a.ChunkBytes, b.ChunkBytes):
		return fmt.Errorf("chunk streams differ (%d / %d bytes)", len(a.ChunkBytes), len(b.ChunkBytes))
	}
	return nil
}
