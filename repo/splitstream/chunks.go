package splitstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gocfs/gocfs/digest"
)

// Chunk is one piece of a split stream's content: inline bytes, read with
// [Reader.Read], or an external object, whose content is the object's
// whole file. The file does not record an object's size; composefs-rs
// reads the object to find it, and so does [Reader.Reassemble].
type Chunk struct {
	// Inline is true for inline data, Size bytes of it.
	Inline bool
	Size   uint64
	// Index is an external chunk's index in ObjectRefs, Object the
	// object's digest.
	Index  int
	Object digest.Digest
}

// chunkState is where the Reader is in the chunks.
type chunkState struct {
	started  bool
	n        int    // chunks returned by Next; the number of the next
	inline   uint64 // unread bytes of the current inline chunk
	inlines  uint64 // bytes of all inline chunks so far
	external bool   // an external chunk was seen
	pos      uint64 // offset in the decompressed chunk stream
	err      error  // sticky: io.EOF at the end, or the first error
}

// fail makes err the Reader's answer from now on.
func (r *Reader) fail(err error) error {
	r.cs.err = err
	return err
}

// chunkErr reports a malformed chunk stream at the chunk Next reads.
func (r *Reader) chunkErr(sentinel error, format string, args ...any) error {
	return r.chunkErrN(r.cs.n, sentinel, format, args...)
}

// chunkErrN reports a malformed chunk stream at chunk n.
func (r *Reader) chunkErrN(n int, sentinel error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return r.fail(errAt(sentinel, fmt.Sprintf("stream chunk %d", n), int64(r.info.Stream.Start),
		"%s, at offset %d of the decompressed stream", msg, r.cs.pos))
}

// decodeErr reports an error of the decoder of the chunk stream.
func (r *Reader) decodeErr(err error) error {
	if r.src != nil && r.src.err != nil {
		return r.fail(ioErr("stream", r.src.err))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return r.chunkErr(ErrCorrupt, "chunk stream truncated")
	}
	e := zstdErr(err, fmt.Sprintf("stream chunk %d", r.cs.n), int64(r.info.Stream.Start))
	return r.fail(e)
}

// Next returns the next chunk, skipping what is left of the current inline
// chunk, or io.EOF after the last. It refuses an external chunk whose index
// is out of range, and inline chunks adding up to more than stream_size; at
// the end of a stream with no external chunk, it checks that the inline
// bytes make exactly stream_size.
func (r *Reader) Next() (Chunk, error) {
	if r.cs.err != nil {
		return Chunk{}, r.cs.err
	}
	if !r.cs.started {
		r.cs.started = true
		if err := r.openSection("stream", r.info.Stream); err != nil {
			return Chunk{}, r.decodeErr(err)
		}
	}
	if r.cs.inline > 0 {
		if _, err := io.CopyN(io.Discard, readerOnly{r}, int64(r.cs.inline)); err != nil {
			return Chunk{}, r.cs.err
		}
	}
	var b [8]byte
	n, err := io.ReadFull(r.dec, b[:])
	if n == 0 && err == io.EOF {
		return Chunk{}, r.end()
	}
	if err != nil {
		return Chunk{}, r.decodeErr(err)
	}
	r.cs.pos += 8
	c, err := r.chunk(int64(binary.LittleEndian.Uint64(b[:])))
	if err != nil {
		return Chunk{}, err
	}
	r.cs.n++
	return c, nil
}

// chunk decodes the chunk that starts with v.
func (r *Reader) chunk(v int64) (Chunk, error) {
	if v < 0 {
		size := uint64(-v) // -MinInt64 wraps to itself, 1<<63 once unsigned
		if size > r.info.StreamSize-r.cs.inlines {
			return Chunk{}, r.chunkErr(ErrSize, "inline chunk of %d bytes after %d inline bytes exceeds stream_size %d",
				size, r.cs.inlines, r.info.StreamSize)
		}
		r.cs.inlines += size
		r.cs.inline = size
		return Chunk{Inline: true, Size: size}, nil
	}
	if v >= int64(len(r.objects)) {
		return Chunk{}, r.chunkErr(ErrCorrupt, "external chunk refers to object %d of %d", v, len(r.objects))
	}
	r.cs.external = true
	return Chunk{Index: int(v), Object: r.objects[v]}, nil
}

// end checks the sizes at the end of the chunks.
func (r *Reader) end() error {
	if !r.cs.external && r.cs.inlines != r.info.StreamSize {
		return r.chunkErr(ErrSize, "inline chunks make %d bytes, stream_size says %d", r.cs.inlines, r.info.StreamSize)
	}
	return r.fail(io.EOF)
}

// Read reads the current inline chunk's data; it returns io.EOF at the end
// of the chunk, and at once for an external chunk.
func (r *Reader) Read(p []byte) (int, error) {
	if r.cs.err != nil && r.cs.err != io.EOF {
		return 0, r.cs.err
	}
	if r.cs.inline == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.cs.inline {
		p = p[:r.cs.inline]
	}
	n, err := r.dec.Read(p)
	r.cs.inline -= uint64(n)
	r.cs.pos += uint64(n)
	switch {
	case err == nil || (err == io.EOF && r.cs.inline == 0):
		return n, nil
	case err == io.EOF:
		return n, r.chunkErrN(r.cs.n-1, ErrCorrupt, "inline chunk truncated, %d bytes missing", r.cs.inline)
	}
	return n, r.decodeErr(err)
}

// readerOnly hides every method but Read, so that io.Copy uses the
// Reader's bounds.
type readerOnly struct{ r io.Reader }

func (o readerOnly) Read(p []byte) (int, error) { return o.r.Read(p) }

// Reassemble writes the original stream to w: inline data as it is, and the
// whole content of each external object, which open returns (the caller
// checks the object against its digest, as a repository does by
// fs-verity). It checks the total against stream_size, stopping as soon as
// the content runs past it, and returns the number of bytes written. It
// must be called before any Next.
func (r *Reader) Reassemble(w io.Writer, open func(digest.Digest) (io.ReadCloser, error)) (int64, error) {
	if r.cs.started {
		return 0, errors.New("splitstream: Reassemble after Next")
	}
	buf := make([]byte, 128<<10)
	var total uint64
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return int64(total), err
		}
		var n uint64
		if c.Inline {
			n, err = r.copyInline(w, c, total, buf)
		} else {
			n, err = r.copyObject(w, c, total, open, buf)
		}
		total += n
		if err != nil {
			return int64(total), err
		}
	}
	if total != r.info.StreamSize {
		return int64(total), r.fail(errAt(ErrSize, "info.stream_size", int64(r.hdr.info.Start)+infoStreamSize,
			"reassembled stream has %d bytes, stream_size says %d", total, r.info.StreamSize))
	}
	return int64(total), nil
}

// copyInline copies inline chunk c, which follows total bytes of content.
func (r *Reader) copyInline(w io.Writer, c Chunk, total uint64, buf []byte) (uint64, error) {
	if c.Size > r.info.StreamSize-total {
		return 0, r.chunkErrN(r.cs.n-1, ErrSize, "inline chunk of %d bytes after %d bytes of content exceeds stream_size %d",
			c.Size, total, r.info.StreamSize)
	}
	n, err := io.CopyBuffer(w, readerOnly{r}, buf)
	if err != nil && r.cs.err == nil {
		err = fmt.Errorf("splitstream: writing: %w", err)
	}
	return uint64(n), err
}

// copyObject copies the object of external chunk c, which follows total
// bytes of content, refusing one that would run past stream_size before
// writing any byte past it.
func (r *Reader) copyObject(w io.Writer, c Chunk, total uint64, open func(digest.Digest) (io.ReadCloser, error), buf []byte) (uint64, error) {
	f, err := open(c.Object)
	if err != nil {
		return 0, fmt.Errorf("splitstream: opening object %s: %w", c.Object, err)
	}
	defer f.Close()
	left := min(r.info.StreamSize-total, math.MaxInt64)
	n, err := io.CopyBuffer(w, io.LimitReader(f, int64(left)), buf)
	if err != nil {
		return uint64(n), fmt.Errorf("splitstream: copying object %s: %w", c.Object, err)
	}
	if uint64(n) == left {
		var one [1]byte
		k, err := io.ReadFull(f, one[:])
		if k > 0 {
			return uint64(n), r.chunkErrN(r.cs.n-1, ErrSize, "object %s makes the content longer than stream_size %d", c.Object, r.info.StreamSize)
		}
		if err != io.EOF {
			return uint64(n), fmt.Errorf("splitstream: reading object %s: %w", c.Object, err)
		}
	}
	return uint64(n), nil
}
