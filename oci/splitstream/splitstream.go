// Package splitstream reads and writes gocfs split streams: a byte stream
// (an OCI layer's tar archive, a JSON document) stored so that it can be
// reproduced byte for byte, with its large pieces (file contents) kept
// elsewhere as objects of a composefs object store, named by their fs-verity
// digests, and only referred to from the stream.
//
// A split stream is a header, two flat uncompressed arrays of digests (the
// other split streams and the objects it refers to) and a zstd-compressed
// sequence of chunks: inline bytes, or a reference to an object. The
// reference arrays come first and uncompressed so that a garbage collector
// can list what a stream keeps alive by reading a few bytes
// ([ReadHeader]). docs/oci.md in the gocfs source describes the format
// byte by byte.
//
// The package depends on nothing of the repository, so that the repository
// can follow split streams' references without importing the OCI code.
package splitstream

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/fsverity"
)

// Magic starts every split stream.
const Magic = "gocfs-ss"

// Version is the format version this package reads and writes.
const Version = 1

// HeaderSize is the size of the fixed part of the header, before the
// reference arrays.
const HeaderSize = 64

// MaxRefs bounds each reference array, so that a corrupt header can't make
// a reader allocate without limit.
const MaxRefs = 1 << 24

// maxInlineChunk bounds one inline chunk; a writer splits longer runs.
const maxInlineChunk = 1 << 20

// ContentType says what a split stream's content is.
type ContentType uint32

// The content types gocfs writes.
const (
	// TarLayer is an uncompressed tar archive: an OCI layer, whose diff
	// ID is the stream's SHA-256.
	TarLayer ContentType = 1
	// OCIImage is a gocfs OCI image record (JSON), whose stream
	// references are its layers and whose object references are the
	// image's manifest and configuration.
	OCIImage ContentType = 2
)

// String returns the content type's name.
func (t ContentType) String() string {
	switch t {
	case TarLayer:
		return "tar-layer"
	case OCIImage:
		return "oci-image"
	}
	return fmt.Sprintf("content-type-%d", uint32(t))
}

// Errors returned by readers (wrapped with details).
var (
	// ErrFormat reports data that is not a valid split stream.
	ErrFormat = errors.New("splitstream: invalid split stream")
	// ErrContent reports a reassembled stream whose size or SHA-256 is
	// not the one its header records, or an object whose size is not the
	// one the stream expects.
	ErrContent = errors.New("splitstream: content does not match the stream")
)

// Header is what precedes a split stream's chunks.
type Header struct {
	// Algorithm is the fs-verity algorithm of every digest in the stream.
	Algorithm fsverity.Algorithm
	// ContentType says what the reassembled content is.
	ContentType ContentType
	// Size is the reassembled content's size in bytes.
	Size uint64
	// SHA256 is the reassembled content's SHA-256.
	SHA256 [32]byte
	// Streams are the fs-verity digests of other split streams this one
	// refers to (not part of its content: a garbage collector keeps them
	// and follows their references).
	Streams [][]byte
	// Objects are the fs-verity digests of the objects whose content is
	// part of the reassembled stream, each listed once, in order of first
	// use, plus any the writer added without using them.
	Objects [][]byte
}

// ReadHeader reads a split stream's header and reference arrays, and
// nothing more: all a garbage collector needs.
func ReadHeader(r io.Reader) (*Header, error) {
	var b [HeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d-byte header truncated", ErrFormat, HeaderSize)
		}
		return nil, err
	}
	if string(b[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, b[:8])
	}
	if b[8] != Version {
		return nil, fmt.Errorf("%w: version %d (this gocfs reads %d)", ErrFormat, b[8], Version)
	}
	h := &Header{Algorithm: fsverity.Algorithm(b[9])}
	if !h.Algorithm.Valid() {
		return nil, fmt.Errorf("%w: unknown fs-verity algorithm %d", ErrFormat, b[9])
	}
	if b[10] != 12 || b[11] != 0 {
		return nil, fmt.Errorf("%w: block size 2^%d, flags %#x (want 2^12, 0)", ErrFormat, b[10], b[11])
	}
	h.ContentType = ContentType(binary.LittleEndian.Uint32(b[12:]))
	h.Size = binary.LittleEndian.Uint64(b[16:])
	copy(h.SHA256[:], b[24:56])
	ns := binary.LittleEndian.Uint32(b[56:])
	no := binary.LittleEndian.Uint32(b[60:])
	if ns > MaxRefs || no > MaxRefs {
		return nil, fmt.Errorf("%w: %d stream and %d object references", ErrFormat, ns, no)
	}
	var err error
	if h.Streams, err = readDigests(r, int(ns), h.Algorithm.Size()); err != nil {
		return nil, err
	}
	if h.Objects, err = readDigests(r, int(no), h.Algorithm.Size()); err != nil {
		return nil, err
	}
	return h, nil
}

func readDigests(r io.Reader, n, size int) ([][]byte, error) {
	if n == 0 {
		return nil, nil
	}
	// Read in slices of bounded size, so that a lying count fails at the
	// end of the data rather than in a huge allocation.
	out := make([][]byte, 0, min(n, 4096))
	for len(out) < n {
		k := min(n-len(out), 4096)
		buf := make([]byte, k*size)
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: reference array truncated", ErrFormat)
			}
			return nil, err
		}
		for i := 0; i < k; i++ {
			out = append(out, buf[i*size:(i+1)*size:(i+1)*size])
		}
	}
	return out, nil
}

func (h *Header) marshal() []byte {
	b := make([]byte, HeaderSize, HeaderSize+(len(h.Streams)+len(h.Objects))*h.Algorithm.Size())
	copy(b, Magic)
	b[8] = Version
	b[9] = byte(h.Algorithm)
	b[10] = 12
	binary.LittleEndian.PutUint32(b[12:], uint32(h.ContentType))
	binary.LittleEndian.PutUint64(b[16:], h.Size)
	copy(b[24:56], h.SHA256[:])
	binary.LittleEndian.PutUint32(b[56:], uint32(len(h.Streams)))
	binary.LittleEndian.PutUint32(b[60:], uint32(len(h.Objects)))
	for _, d := range h.Streams {
		b = append(b, d...)
	}
	for _, d := range h.Objects {
		b = append(b, d...)
	}
	return b
}

// Writer builds a split stream. Its methods must be called from one
// goroutine. The chunks are compressed into memory as they come (file
// contents are not: they are only referred to), so a stream's size in
// memory is about that of its compressed metadata.
type Writer struct {
	h       Header
	objIdx  map[string]int
	inline  []byte
	size    uint64
	buf     bytes.Buffer
	zw      *zstd.Encoder
	scratch [16]byte
	err     error
}

// NewWriter starts a split stream of the given content type whose
// references are digests of alg.
func NewWriter(alg fsverity.Algorithm, ct ContentType) *Writer {
	w := &Writer{h: Header{Algorithm: alg, ContentType: ct}, objIdx: make(map[string]int)}
	// Fastest level, one goroutine, no checksum (the content's SHA-256 is
	// in the header, and the stream itself is an fs-verity object): the
	// compression serves to drop the tar headers' zero padding.
	w.zw, w.err = zstd.NewWriter(&w.buf, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	return w
}

// Write adds p to the stream as inline data.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	w.size += uint64(n)
	for len(p) > 0 {
		k := min(len(p), maxInlineChunk-len(w.inline))
		w.inline = append(w.inline, p[:k]...)
		p = p[k:]
		if len(w.inline) == maxInlineChunk {
			w.flushInline()
		}
	}
	return n, w.err
}

func (w *Writer) flushInline() {
	if len(w.inline) == 0 || w.err != nil {
		return
	}
	binary.LittleEndian.PutUint64(w.scratch[:8], uint64(-int64(len(w.inline))))
	if _, err := w.zw.Write(w.scratch[:8]); err != nil {
		w.err = err
		return
	}
	if _, err := w.zw.Write(w.inline); err != nil {
		w.err = err
	}
	w.inline = w.inline[:0]
}

// objectIndex returns the index of digest in the object references,
// adding it if new.
func (w *Writer) objectIndex(digest []byte) (int, error) {
	if len(digest) != w.h.Algorithm.Size() {
		return 0, fmt.Errorf("splitstream: a %d-byte digest in a %s stream", len(digest), w.h.Algorithm)
	}
	if i, ok := w.objIdx[string(digest)]; ok {
		return i, nil
	}
	if len(w.h.Objects) >= MaxRefs {
		return 0, fmt.Errorf("splitstream: more than %d object references", MaxRefs)
	}
	i := len(w.h.Objects)
	w.h.Objects = append(w.h.Objects, append([]byte(nil), digest...))
	w.objIdx[string(digest)] = i
	return i, nil
}

// WriteObject adds to the stream the content of the object with the given
// fs-verity digest, size bytes long, by reference.
func (w *Writer) WriteObject(digest []byte, size int64) error {
	if w.err != nil {
		return w.err
	}
	if size < 0 {
		return fmt.Errorf("splitstream: negative object size %d", size)
	}
	i, err := w.objectIndex(digest)
	if err != nil {
		return err
	}
	w.flushInline()
	binary.LittleEndian.PutUint64(w.scratch[:8], uint64(i))
	binary.LittleEndian.PutUint64(w.scratch[8:], uint64(size))
	if _, err := w.zw.Write(w.scratch[:16]); err != nil {
		w.err = err
	}
	w.size += uint64(size)
	return w.err
}

// AddObjectRef records a reference to an object that is not part of the
// content (it keeps the object alive; a reader of the content ignores it).
func (w *Writer) AddObjectRef(digest []byte) error {
	_, err := w.objectIndex(digest)
	return err
}

// AddStreamRef records a reference to another split stream.
func (w *Writer) AddStreamRef(digest []byte) error {
	if len(digest) != w.h.Algorithm.Size() {
		return fmt.Errorf("splitstream: a %d-byte digest in a %s stream", len(digest), w.h.Algorithm)
	}
	if len(w.h.Streams) >= MaxRefs {
		return fmt.Errorf("splitstream: more than %d stream references", MaxRefs)
	}
	w.h.Streams = append(w.h.Streams, append([]byte(nil), digest...))
	return nil
}

// Size returns the size of the content written so far.
func (w *Writer) Size() uint64 { return w.size }

// Finish ends the stream and writes it to dst. sum is the SHA-256 of the
// whole content (inline data and objects, in order), which the writer
// can't compute itself since object contents don't pass through it. The
// writer can't be used afterwards.
func (w *Writer) Finish(dst io.Writer, sum [32]byte) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.flushInline()
	if w.err != nil {
		return 0, w.err
	}
	if err := w.zw.Close(); err != nil {
		return 0, err
	}
	w.err = errors.New("splitstream: writer finished")
	w.h.Size = w.size
	w.h.SHA256 = sum
	n, err := dst.Write(w.h.marshal())
	if err != nil {
		return int64(n), err
	}
	m, err := w.buf.WriteTo(dst)
	return int64(n) + m, err
}

// Chunk is one piece of a split stream's content.
type Chunk struct {
	// Inline holds the bytes of an inline chunk (valid until the next
	// call to Next); nil for an object.
	Inline []byte
	// Object is the digest of an object chunk's object, Size its size.
	Object []byte
	Size   int64
}

// Reader reads a split stream's chunks.
type Reader struct {
	h    *Header
	zr   *zstd.Decoder
	buf  []byte
	done uint64
}

// NewReader reads a split stream's header from r and returns a reader of
// its chunks. Close it when done.
func NewReader(r io.Reader) (*Reader, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return &Reader{h: h, zr: zr}, nil
}

// Header returns the stream's header.
func (r *Reader) Header() *Header { return r.h }

// Close releases the reader's resources.
func (r *Reader) Close() { r.zr.Close() }

// Next returns the next chunk, or io.EOF after the last one. At the end,
// the chunks' total size has been checked against the header's.
func (r *Reader) Next() (Chunk, error) {
	var b [8]byte
	if _, err := io.ReadFull(r.zr, b[:]); err != nil {
		if err == io.EOF {
			if r.done != r.h.Size {
				return Chunk{}, fmt.Errorf("%w: chunks make %d bytes, header says %d", ErrContent, r.done, r.h.Size)
			}
			return Chunk{}, io.EOF
		}
		return Chunk{}, r.formatErr(err)
	}
	v := int64(binary.LittleEndian.Uint64(b[:]))
	if v < 0 {
		n := -v
		if n > maxInlineChunk || n <= 0 {
			return Chunk{}, fmt.Errorf("%w: inline chunk of %d bytes", ErrFormat, n)
		}
		if cap(r.buf) < int(n) {
			r.buf = make([]byte, n)
		}
		r.buf = r.buf[:n]
		if _, err := io.ReadFull(r.zr, r.buf); err != nil {
			return Chunk{}, r.formatErr(err)
		}
		r.done += uint64(n)
		return Chunk{Inline: r.buf}, nil
	}
	if v >= int64(len(r.h.Objects)) {
		return Chunk{}, fmt.Errorf("%w: reference to object %d of %d", ErrFormat, v, len(r.h.Objects))
	}
	if _, err := io.ReadFull(r.zr, b[:]); err != nil {
		return Chunk{}, r.formatErr(err)
	}
	size := int64(binary.LittleEndian.Uint64(b[:]))
	if size < 0 {
		return Chunk{}, fmt.Errorf("%w: object chunk of %d bytes", ErrFormat, size)
	}
	r.done += uint64(size)
	return Chunk{Object: r.h.Objects[v], Size: size}, nil
}

func (r *Reader) formatErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: chunk truncated", ErrFormat)
	}
	return fmt.Errorf("%w: %v", ErrFormat, err)
}

// Cat writes the reassembled content to dst, reading each object through
// open, and checks its size and SHA-256 against the header. When the check
// fails, dst has had the content all the same; the error wraps ErrContent.
func (r *Reader) Cat(dst io.Writer, open func(digest []byte) (io.ReadCloser, error)) error {
	h := sha256.New()
	out := io.MultiWriter(dst, h)
	buf := make([]byte, 256<<10)
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.Object == nil {
			if _, err := out.Write(c.Inline); err != nil {
				return err
			}
			continue
		}
		f, err := open(c.Object)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(out, io.LimitReader(f, c.Size+1), buf)
		f.Close()
		if err != nil {
			return err
		}
		if n != c.Size {
			return fmt.Errorf("%w: object %s has %d bytes, the stream expects %d", ErrContent, fsverity.Hex(c.Object), n, c.Size)
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, r.h.SHA256[:]) {
		return fmt.Errorf("%w: reassembled content has SHA-256 %x, header says %x", ErrContent, got, r.h.SHA256)
	}
	return nil
}
