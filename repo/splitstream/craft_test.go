package splitstream

import (
	"encoding/binary"

	"github.com/klauspost/compress/zstd"
)

// craft builds split streams by hand, from raw section bytes, laid out as
// composefs-rs lays them out (splitstream.rs done()); tests then break them.
type craft struct {
	alg        byte
	streamRefs []byte
	objectRefs []byte
	named      []byte // the compressed named refs section
	stream     []byte // the compressed chunk section
	ct, size   uint64
}

// Offsets of the info fields in a crafted file (info at 32).
const (
	cStreamRefs  = 32
	cObjectRefs  = 48
	cStream      = 64
	cNamedRefs   = 80
	cContentType = 96
	cStreamSize  = 104
)

func (c craft) bytes() []byte {
	alg := c.alg
	if alg == 0 {
		alg = 1
	}
	b := make([]byte, 112)
	copy(b, "SplitStream")
	b[14], b[15] = alg, 12
	le := binary.LittleEndian
	le.PutUint64(b[16:], 32)
	le.PutUint64(b[24:], 112)
	pos := uint64(112)
	for _, s := range []struct {
		off  int
		data []byte
	}{{cStreamRefs, c.streamRefs}, {cObjectRefs, c.objectRefs}, {cNamedRefs, c.named}, {cStream, c.stream}} {
		le.PutUint64(b[s.off:], pos)
		le.PutUint64(b[s.off+8:], pos+uint64(len(s.data)))
		pos += uint64(len(s.data))
		b = append(b, s.data...)
	}
	le.PutUint64(b[cContentType:], c.ct)
	le.PutUint64(b[cStreamSize:], c.size)
	return b
}

// put64 sets the little-endian 64-bit field at off.
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// zst compresses b into one zstd frame (any valid frame will do).
func zst(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// inlineChunk and extChunk are raw chunks of the decompressed stream.
func inlineChunk(data string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, uint64(-int64(len(data)))), data...)
}

func extChunk(i int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(i)) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
