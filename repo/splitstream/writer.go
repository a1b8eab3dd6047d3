package splitstream

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// refList is a list of digests, each once, in order of first appearance
// (composefs-rs's UniqueVec).
type refList struct {
	items []digest.Digest
	index map[digest.Digest]int
}

// ensure returns d's index, appending d if it is new.
func (l *refList) ensure(d digest.Digest) int {
	if i, ok := l.index[d]; ok {
		return i
	}
	if l.index == nil {
		l.index = make(map[digest.Digest]int)
	}
	i := len(l.items)
	l.items = append(l.items, d)
	l.index[d] = i
	return i
}

// bytes returns the digests concatenated, the on-disk array.
func (l *refList) bytes(size int) []byte {
	b := make([]byte, 0, len(l.items)*size)
	for _, d := range l.items {
		b = append(b, d.Bytes()...)
	}
	return b
}

// Writer builds a split stream exactly as composefs-rs's SplitStreamWriter
// does: inline data is gathered until the next external chunk or the end,
// and written as one inline chunk however long the run is; object
// references are numbered in order of first appearance; named references
// are written sorted by name. Its methods must be called from one
// goroutine.
//
// The file's header comes first but records where the compressed sections
// end, so the Writer keeps everything until [Writer.Finish]: the current run
// of inline data uncompressed (as composefs-rs does; a tar layer made only
// of small files is one run) and the compressed chunks before it.
type Writer struct {
	alg     fsverity.Algorithm
	ct      ContentType
	objects refList
	streams refList
	named   map[string]int // name -> index in streams
	inline  []byte         // the current run of inline data
	size    uint64         // stream_size so far
	z       *compressor
	err     error
}

// NewWriter starts a split stream of content type ct whose references are
// digests made with alg.
func NewWriter(alg fsverity.Algorithm, ct ContentType) (*Writer, error) {
	if !alg.Valid() {
		return nil, fmt.Errorf("splitstream: %w: %s", fsverity.ErrUnknownAlgorithm, alg)
	}
	z, err := newCompressor()
	if err != nil {
		return nil, err
	}
	return &Writer{alg: alg, ct: ct, named: make(map[string]int), z: z}, nil
}

// Write adds p to the stream as inline data (write_inline). It fails only
// after Finish, or if stream_size would overflow 64 bits.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.addSize(uint64(len(p))); err != nil {
		return 0, err
	}
	w.inline = append(w.inline, p...)
	return len(p), nil
}

// addSize adds n to stream_size.
func (w *Writer) addSize(n uint64) error {
	if w.size > math.MaxUint64-n {
		return fmt.Errorf("splitstream: stream size overflows 64 bits")
	}
	w.size += n
	return nil
}

// checkDigest refuses a digest of another algorithm than the stream's.
func (w *Writer) checkDigest(what string, d digest.Digest) error {
	if d.Algorithm() != w.alg {
		return fmt.Errorf("splitstream: %s %s is a %s digest in a %s stream", what, d, d.Algorithm(), w.alg)
	}
	return nil
}

// flushInline writes the gathered inline data as one chunk: its length,
// negated, as a little-endian int64, then the data (flush_inline).
func (w *Writer) flushInline() error {
	if len(w.inline) == 0 {
		return nil
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(-int64(len(w.inline))))
	if _, err := w.z.Write(b[:]); err != nil {
		return fmt.Errorf("splitstream: compressing: %w", err)
	}
	if _, err := w.z.Write(w.inline); err != nil {
		return fmt.Errorf("splitstream: compressing: %w", err)
	}
	w.inline = w.inline[:0]
	return nil
}

// WriteExternal adds the content of object d, size bytes, to the stream by
// reference (write_reference plus add_external_size): the inline data
// gathered so far is written out as one chunk, then a chunk holding d's
// index among the object references. size only counts towards stream_size;
// the file does not record it.
func (w *Writer) WriteExternal(d digest.Digest, size uint64) error {
	if w.err != nil {
		return w.err
	}
	if err := w.checkDigest("object", d); err != nil {
		return err
	}
	if err := w.addSize(size); err != nil {
		return err
	}
	if err := w.flushInline(); err != nil {
		w.err = err
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(w.objects.ensure(d)))
	if _, err := w.z.Write(b[:]); err != nil {
		w.err = fmt.Errorf("splitstream: compressing: %w", err)
	}
	return w.err
}

// AddObjectRef lists object d among the object references without a chunk
// (add_object_ref: the stream keeps d alive without containing it) and
// returns its index, the one it already had if listed before.
func (w *Writer) AddObjectRef(d digest.Digest) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.checkDigest("object", d); err != nil {
		return 0, err
	}
	return w.objects.ensure(d), nil
}

// AddNamedStreamRef records that this stream refers to the split stream d
// under name (add_named_stream_ref). d joins the stream references in order
// of first appearance; naming again replaces the name's digest, and, as in
// composefs-rs, a digest that loses its last name stays among the stream
// references. name must be UTF-8 without NUL, which ends a record on disk.
func (w *Writer) AddNamedStreamRef(name string, d digest.Digest) error {
	if w.err != nil {
		return w.err
	}
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("splitstream: named reference %q: not UTF-8 without NUL", name)
	}
	if err := w.checkDigest("stream", d); err != nil {
		return err
	}
	w.named[name] = w.streams.ensure(d)
	return nil
}

// Size returns stream_size so far: the inline bytes plus the sizes given to
// WriteExternal.
func (w *Writer) Size() uint64 { return w.size }

// namedRefsText returns the uncompressed named references section:
// "index:name\0" for each name, sorted by name bytewise (composefs-rs keeps
// them in a BTreeMap<Box<str>, usize>).
func (w *Writer) namedRefsText() []byte {
	names := make([]string, 0, len(w.named))
	for n := range w.named {
		names = append(names, n)
	}
	slices.Sort(names)
	var b []byte
	for _, n := range names {
		b = strconv.AppendInt(b, int64(w.named[n]), 10)
		b = append(b, ':')
		b = append(b, n...)
		b = append(b, 0)
	}
	return b
}

// compressNamedRefs returns the named references section as a zstd frame,
// in a header and a body.
func (w *Writer) compressNamedRefs() (head, body []byte, err error) {
	z, err := newCompressor()
	if err != nil {
		return nil, nil, err
	}
	if _, err := z.Write(w.namedRefsText()); err != nil {
		return nil, nil, fmt.Errorf("splitstream: compressing named references: %w", err)
	}
	return z.finish()
}

// Finish ends the stream and writes the file to dst, laid out as
// composefs-rs lays it out, with no padding: the header, the info section,
// the stream references, the object references, the compressed named
// references, the compressed chunks. It returns the number of bytes
// written. The Writer can't be used afterwards.
func (w *Writer) Finish(dst io.Writer) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.err = errFinished
	if err := w.flushInline(); err != nil {
		return 0, err
	}
	sHead, sBody, err := w.z.finish()
	if err != nil {
		return 0, err
	}
	nHead, nBody, err := w.compressNamedRefs()
	if err != nil {
		return 0, err
	}
	streams := w.streams.bytes(w.alg.Size())
	objects := w.objects.bytes(w.alg.Size())
	pos := uint64(HeaderSize + InfoSize)
	next := func(n int) Range {
		r := Range{Start: pos, End: pos + uint64(n)}
		pos = r.End
		return r
	}
	in := Info{ContentType: w.ct, StreamSize: w.size}
	in.StreamRefs = next(len(streams))
	in.ObjectRefs = next(len(objects))
	in.NamedRefs = next(len(nHead) + len(nBody))
	in.Stream = next(len(sHead) + len(sBody))
	hdr := marshalHeader(w.alg, Range{Start: HeaderSize, End: HeaderSize + InfoSize})
	var total int64
	for _, b := range [][]byte{hdr, in.marshal(), streams, objects, nHead, nBody, sHead, sBody} {
		n, err := dst.Write(b)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("splitstream: writing: %w", err)
		}
	}
	return total, nil
}
