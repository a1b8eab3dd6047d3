package splitstream

// An independent reader of the format, written from composefs-rs's
// description of it rather than from this package: it shares no code with
// Reader (it parses a []byte, decompresses whole sections with DecodeAll and
// walks the chunks in memory), so a mistake has to be made twice to pass
// unnoticed. Each fact names its source:
//
//   [fmt] crates/composefs/src/splitstream_format.rs (the format's prose)
//   [ss]  crates/composefs/src/splitstream.rs (structs, const asserts,
//         SplitStreamWriter::done, SplitStreamReader::new)
//
// Tests run it over every file the Writer produces and over the golden
// files, which a third implementation (testdata/golden/mkgolden.py) wrote.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// specFile is a split stream as the spec describes it.
type specFile struct {
	oldHeader   bool
	version     byte
	flags       uint16
	algorithm   byte
	lgBlockSize byte
	info        [2]uint64    // header.info FileRange
	ranges      [4][2]uint64 // stream_refs, object_refs, stream, named_refs
	contentType uint64
	streamSize  uint64
	streamRefs  [][]byte
	objectRefs  [][]byte
	named       map[string]int // name -> index into streamRefs
	namedText   []byte         // the decompressed named refs section
	chunkBytes  []byte         // the decompressed stream section
	chunks      []specChunk
}

type specChunk struct {
	inline []byte // inline data, or nil
	index  int64  // object index, for an external chunk
}

// specParse parses b by the spec. It assumes a well-formed file written by
// a trusted writer and only needs to catch such a writer's mistakes.
func specParse(b []byte) (*specFile, error) {
	le := binary.LittleEndian
	if len(b) < 32 { // [ss] size_of::<SplitstreamHeader>() == 32
		return nil, errors.New("short header")
	}
	f := &specFile{}
	// [fmt] "magic: [u8; 11] // Contains SPLITSTREAM_MAGIC", b"SplitStream";
	// [ss] repr(C) header: magic 0, version 11, _flags 12, algorithm 14,
	// lg_blocksize 15, info 16.
	if string(b[0:11]) == "SplitStream" {
		f.version, f.flags, f.algorithm, f.lgBlockSize = b[11], le.Uint16(b[12:]), b[14], b[15]
		f.info = [2]uint64{le.Uint64(b[16:]), le.Uint64(b[24:])}
	} else if string(b[18:29]) == "SplitStream" {
		// [ss] OldSplitstreamHeader const asserts: info 0, _flags 16,
		// magic 18, version 29, algorithm 30, lg_blocksize 31. [ss]
		// SplitStreamReader::new tries this when offset 0 has no magic.
		f.oldHeader = true
		f.info = [2]uint64{le.Uint64(b[0:]), le.Uint64(b[8:])}
		f.flags, f.version, f.algorithm, f.lgBlockSize = le.Uint16(b[16:]), b[29], b[30], b[31]
	} else {
		return nil, errors.New("no magic")
	}
	// [fmt] version "must always be 0"; algorithm "1 = sha256, 2 =
	// sha512"; [ss] LG_BLOCKSIZE = 12.
	if f.version != 0 || (f.algorithm != 1 && f.algorithm != 2) || f.lgBlockSize != 12 {
		return nil, fmt.Errorf("header version %d algorithm %d lg_blocksize %d", f.version, f.algorithm, f.lgBlockSize)
	}
	// [fmt] SplitstreamInfo: four FileRanges {start: U64, end: U64}, then
	// content_type: U64, stream_size: U64, all little-endian. A longer
	// info section is allowed; the extra bytes are ignored.
	if f.info[1] < f.info[0] || f.info[1] > uint64(len(b)) || f.info[1]-f.info[0] < 80 {
		return nil, fmt.Errorf("info range %v", f.info)
	}
	info := b[f.info[0]:f.info[1]]
	for i := range f.ranges {
		f.ranges[i] = [2]uint64{le.Uint64(info[16*i:]), le.Uint64(info[16*i+8:])}
		if f.ranges[i][1] < f.ranges[i][0] || f.ranges[i][1] > uint64(len(b)) {
			return nil, fmt.Errorf("range %d %v", i, f.ranges[i])
		}
	}
	f.contentType, f.streamSize = le.Uint64(info[64:]), le.Uint64(info[72:])
	if err := f.parseSections(b); err != nil {
		return nil, err
	}
	return f, nil
}

// parseSections reads the reference arrays, the named refs and the chunks.
func (f *specFile) parseSections(b []byte) error {
	// [fmt] "The number of items in the array is determined by the size of
	// the section divided by the size of the fs-verity hash value".
	hashSize := 32 * int(f.algorithm)
	section := func(i int) []byte { return b[f.ranges[i][0]:f.ranges[i][1]] }
	var err error
	if f.streamRefs, err = specSplit(section(0), hashSize); err != nil {
		return err
	}
	if f.objectRefs, err = specSplit(section(1), hashSize); err != nil {
		return err
	}
	// [fmt] named refs: zstd-compressed, "nul-terminated text records
	// (including a terminator after the last record)", each "n:name".
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	if f.namedText, err = dec.DecodeAll(section(3), nil); err != nil {
		return fmt.Errorf("named refs: %w", err)
	}
	if err := f.parseNamed(); err != nil {
		return err
	}
	// [fmt] the stream: zstd-compressed chunks, each a little-endian
	// 64-bit value; negative: that many inline bytes follow; non-negative:
	// an index into the object refs. "The stream is over when there are no
	// more chunks."
	if f.chunkBytes, err = dec.DecodeAll(section(2), nil); err != nil {
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

func (f *specFile) parseNamed() error {
	f.named = map[string]int{}
	text := string(f.namedText)
	if text == "" {
		return nil
	}
	if !strings.HasSuffix(text, "\x00") {
		return errors.New("named refs: no final NUL")
	}
	for _, rec := range strings.Split(strings.TrimSuffix(text, "\x00"), "\x00") {
		idx, name, ok := strings.Cut(rec, ":")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= len(f.streamRefs) {
			return fmt.Errorf("named ref %q", rec)
		}
		f.named[name] = n
	}
	return nil
}

func (f *specFile) parseChunks() error {
	b := f.chunkBytes
	for len(b) > 0 {
		if len(b) < 8 {
			return errors.New("stream: partial chunk header")
		}
		v := int64(binary.LittleEndian.Uint64(b))
		b = b[8:]
		if v >= 0 {
			if v >= int64(len(f.objectRefs)) {
				return fmt.Errorf("stream: index %d of %d", v, len(f.objectRefs))
			}
			f.chunks = append(f.chunks, specChunk{index: v})
			continue
		}
		if -v > int64(len(b)) {
			return fmt.Errorf("stream: inline %d bytes, %d left", -v, len(b))
		}
		f.chunks = append(f.chunks, specChunk{inline: b[:-v]})
		b = b[-v:]
	}
	return nil
}

// specLayoutCheck checks the layout SplitStreamWriter::done produces ([ss]):
// the header at 0, info right after it (32..112), then the stream refs,
// object refs, named refs and stream, each starting where the previous
// ends, the stream ending the file; version 0, flags 0, lg_blocksize 12.
func specLayoutCheck(b []byte, f *specFile) error {
	want := [2]uint64{32, 112}
	if f.info != want {
		return fmt.Errorf("info at %v, want %v", f.info, want)
	}
	order := []int{0, 1, 3, 2} // stream_refs, object_refs, named_refs, stream
	pos := uint64(112)
	for _, i := range order {
		if f.ranges[i][0] != pos {
			return fmt.Errorf("section %d starts at %d, want %d", i, f.ranges[i][0], pos)
		}
		pos = f.ranges[i][1]
	}
	if pos != uint64(len(b)) {
		return fmt.Errorf("stream ends at %d, file at %d", pos, len(b))
	}
	if f.flags != 0 {
		return fmt.Errorf("flags %#x", f.flags)
	}
	return nil
}

// specSame compares two parsed files in everything but the compressed
// bytes: the header and info fields that do not depend on compressed sizes,
// the reference arrays, the decompressed named refs and chunks.
func specSame(a, b *specFile) error {
	switch {
	case a.oldHeader != b.oldHeader || a.version != b.version || a.flags != b.flags ||
		a.algorithm != b.algorithm || a.lgBlockSize != b.lgBlockSize || a.info != b.info:
		return fmt.Errorf("headers differ: %+v / %+v", *a, *b)
	case a.ranges[0] != b.ranges[0] || a.ranges[1] != b.ranges[1] || a.ranges[3][0] != b.ranges[3][0]:
		return fmt.Errorf("uncompressed sections placed differently: %v / %v", a.ranges, b.ranges)
	case a.contentType != b.contentType || a.streamSize != b.streamSize:
		return fmt.Errorf("content type %#x / %#x, stream size %d / %d", a.contentType, b.contentType, a.streamSize, b.streamSize)
	case !bytes.Equal(bytes.Join(a.streamRefs, nil), bytes.Join(b.streamRefs, nil)):
		return errors.New("stream refs differ")
	case !bytes.Equal(bytes.Join(a.objectRefs, nil), bytes.Join(b.objectRefs, nil)):
		return errors.New("object refs differ")
	case !bytes.Equal(a.namedText, b.namedText):
		return fmt.Errorf("named refs differ: %q / %q", a.namedText, b.namedText)
	case !bytes.Equal(a.chunkBytes, b.chunkBytes):
		return fmt.Errorf("chunk streams differ (%d / %d bytes)", len(a.chunkBytes), len(b.chunkBytes))
	}
	return nil
}
