package splitstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// What libzstd writes, called the way composefs-rs calls it through the zstd
// crate (Encoder::new(vec![], 0): compression level 0, which libzstd reads
// as its default, 3; no checksum; data fed with ZSTD_compressStream, so the
// content size is never known when the frame header is written).
var (
	// libzstdEmptyFrame is the frame of a section that got no input: with
	// ZSTD_endStream as the first call libzstd knows the size is 0 and
	// writes a single-segment header with a 1-byte content size of 0, then
	// one empty raw block marked last.
	libzstdEmptyFrame = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00}
	// libzstdStreamHeader is the header of a frame that got input: magic,
	// frame header descriptor 0 (no content size, not single-segment, no
	// checksum, no dictionary), window descriptor 0x58 (2^21 bytes, level
	// 3's window when the size is unknown).
	libzstdStreamHeader = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}
)

// libzstdWindow is the window libzstdStreamHeader declares.
const libzstdWindow = 1 << 21

// compressor zstd-compresses one section into memory.
type compressor struct {
	enc *zstd.Encoder
	buf bytes.Buffer
	n   int64 // uncompressed bytes written
}

// encoders holds idle encoders: making one allocates its match tables,
// which costs more than compressing a small section.
var encoders sync.Pool

// newCompressor returns a compressor configured as close to composefs-rs's
// libzstd as klauspost/compress allows: the default level (its SpeedDefault
// is its counterpart of level 3), no checksum, a 2 MiB window, no
// single-segment frames, one goroutine.
func newCompressor() (*compressor, error) {
	c := &compressor{}
	if enc, ok := encoders.Get().(*zstd.Encoder); ok {
		enc.Reset(&c.buf)
		c.enc = enc
		return c, nil
	}
	enc, err := zstd.NewWriter(&c.buf,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(libzstdWindow),
		zstd.WithSingleSegment(false),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("splitstream: zstd encoder: %w", err)
	}
	c.enc = enc
	return c, nil
}

func (c *compressor) Write(p []byte) (int, error) {
	n, err := c.enc.Write(p)
	c.n += int64(n)
	return n, err
}

// finish ends the frame and returns it as a header and a body to write one
// after the other. The header is libzstd's (see libzstdStreamHeader) in
// place of klauspost's, which records the content size and a smaller window
// when all the data fits in one block; the blocks are klauspost's, valid
// under the larger window since they never reach further back than the
// window they were made with.
func (c *compressor) finish() (head, body []byte, err error) {
	err = c.enc.Close()
	c.enc.Reset(nil)
	encoders.Put(c.enc)
	c.enc = nil
	if err != nil {
		return nil, nil, fmt.Errorf("splitstream: zstd encoder: %w", err)
	}
	if c.n == 0 {
		return libzstdEmptyFrame, nil, nil
	}
	frame := c.buf.Bytes()
	n, err := frameHeaderLen(frame)
	if err != nil {
		return nil, nil, err
	}
	return libzstdStreamHeader, frame[n:], nil
}

// frameHeaderLen returns the length of the zstd frame header at the start
// of b, which must have no dictionary and no checksum (RFC 8878, 3.1.1.1).
func frameHeaderLen(b []byte) (int, error) {
	if len(b) < 5 || !bytes.Equal(b[:4], libzstdStreamHeader[:4]) {
		return 0, errors.New("splitstream: zstd encoder wrote no frame header")
	}
	fhd := b[4]
	if fhd&0x0f != 0 {
		return 0, fmt.Errorf("splitstream: zstd encoder wrote frame header descriptor %#x with a checksum or dictionary", fhd)
	}
	single := fhd&0x20 != 0
	n := 5
	if !single {
		n++ // window descriptor
	}
	switch fhd >> 6 {
	case 0:
		if single {
			n++
		}
	case 1:
		n += 2
	case 2:
		n += 4
	case 3:
		n += 8
	}
	if len(b) < n {
		return 0, errors.New("splitstream: zstd encoder wrote a truncated frame header")
	}
	return n, nil
}

// newDecoder returns a zstd decoder of r bounded to MaxWindowSize: the
// window, which the decoder allocates, is the only memory a frame can claim
// in a streaming decode.
func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	d, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxWindowSize),
		zstd.WithDecoderMaxMemory(MaxWindowSize))
	if err != nil {
		return nil, fmt.Errorf("splitstream: zstd decoder: %w", err)
	}
	return d, nil
}

// zstdErr classifies an error from decompressing section field at file
// offset off: over a limit, truncated, or corrupt.
func zstdErr(err error, field string, off int64) error {
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return errAt(ErrLimit, field, off, "zstd window over %d bytes", MaxWindowSize)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errAt(ErrCorrupt, field, off, "zstd data truncated")
	}
	return errAt(ErrCorrupt, field, off, "zstd: %v", err)
}
