package splitstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// Option configures NewReader.
type Option func(*options)

type options struct {
	alg    fsverity.Algorithm
	ct     ContentType
	haveCT bool
}

// WithAlgorithm makes NewReader refuse, with ErrAlgorithm, a stream whose
// digests are not made with alg: a repository's streams all use its
// algorithm (composefs-rs checks the header against the repository's).
func WithAlgorithm(alg fsverity.Algorithm) Option {
	return func(o *options) { o.alg = alg }
}

// WithContentType makes NewReader refuse, with ErrContentType, a stream of
// another content type (composefs-rs's expected_content_type).
func WithContentType(ct ContentType) Option {
	return func(o *options) { o.ct, o.haveCT = ct, true }
}

// NamedRef is one named reference: a name this stream gives to the split
// stream at index Index of its stream references.
type NamedRef struct {
	Name   string
	Index  int
	Digest digest.Digest
}

// Reader reads a split stream from an io.ReaderAt. NewReader reads what
// lies outside the compressed chunks (the header, info, reference arrays
// and named references), all a garbage collector needs; the chunks are
// decompressed as Next, Read and Reassemble ask for them. Its methods must
// be called from one goroutine. Close it when done.
type Reader struct {
	ra      io.ReaderAt
	size    int64
	hdr     header
	info    Info
	objects []digest.Digest
	streams []digest.Digest
	named   []NamedRef // sorted by name
	dec     *zstd.Decoder
	src     *ioTracker
	cs      chunkState
}

// NewReader reads the split stream of size bytes in ra, checking its header
// and the placement of every section, and reads its references.
func NewReader(ra io.ReaderAt, size int64, opts ...Option) (*Reader, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := &Reader{ra: ra, size: size}
	if err := r.readHeader(o.alg); err != nil {
		return nil, err
	}
	if err := r.readInfo(); err != nil {
		return nil, err
	}
	if o.haveCT && r.info.ContentType != o.ct {
		return nil, errAt(ErrContentType, "info.content_type", int64(r.hdr.info.Start)+infoContentType,
			"%s, want %s", r.info.ContentType, o.ct)
	}
	var err error
	if r.streams, err = r.readRefs("info.stream_refs", r.info.StreamRefs); err != nil {
		return nil, err
	}
	if r.objects, err = r.readRefs("info.object_refs", r.info.ObjectRefs); err != nil {
		return nil, err
	}
	if err := r.readNamedRefs(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// readAt reads the n bytes at off, which the caller has checked lie within
// size.
func (r *Reader) readAt(field string, off, n uint64) ([]byte, error) {
	b := make([]byte, n)
	k, err := r.ra.ReadAt(b, int64(off))
	if k == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, errAt(ErrCorrupt, field, int64(off)+int64(k), "file ends before its stated size %d", r.size)
	}
	return nil, fmt.Errorf("splitstream: reading %s at offset %#x: %w", field, off, err)
}

func (r *Reader) readHeader(alg fsverity.Algorithm) error {
	if r.size < HeaderSize {
		return errAt(ErrNotSplitStream, "header", 0, "file of %d bytes, shorter than the %d-byte header", r.size, HeaderSize)
	}
	b, err := r.readAt("header", 0, HeaderSize)
	if err != nil {
		return err
	}
	if r.hdr, err = parseHeader(b); err != nil {
		return err
	}
	return r.hdr.checkHeader(alg)
}

// readInfo reads the info section and checks every range: each within the
// file, none reversed, the reference arrays whole digests, and no two
// non-empty sections (the header included) sharing a byte.
func (r *Reader) readInfo() error {
	hoff := int64(offInfo)
	if r.hdr.old {
		hoff = oldOffInfo
	}
	if err := r.checkRange("header.info", hoff, r.hdr.info); err != nil {
		return err
	}
	if r.hdr.info.Len() < InfoSize {
		return errAt(ErrCorrupt, "header.info", hoff, "info section %s of %d bytes, shorter than %d", r.hdr.info, r.hdr.info.Len(), InfoSize)
	}
	b, err := r.readAt("info", r.hdr.info.Start, InfoSize)
	if err != nil {
		return err
	}
	r.info = unmarshalInfo(b)
	base := int64(r.hdr.info.Start)
	sections := []struct {
		field string
		off   int64
		rg    Range
	}{
		{"header", 0, Range{0, HeaderSize}},
		{"header.info", hoff, r.hdr.info},
		{"info.stream_refs", base + infoStreamRefs, r.info.StreamRefs},
		{"info.object_refs", base + infoObjectRefs, r.info.ObjectRefs},
		{"info.stream", base + infoStream, r.info.Stream},
		{"info.named_refs", base + infoNamedRefs, r.info.NamedRefs},
	}
	for i, s := range sections[2:] {
		if err := r.checkRange(s.field, s.off, s.rg); err != nil {
			return err
		}
		if i < 2 && s.rg.Len()%uint64(r.hdr.algorithm.Size()) != 0 {
			return errAt(ErrCorrupt, s.field, s.off, "%d bytes is not a whole number of %d-byte %s digests",
				s.rg.Len(), r.hdr.algorithm.Size(), r.hdr.algorithm)
		}
	}
	for i, a := range sections {
		for _, b := range sections[i+1:] {
			if a.rg.Len() > 0 && b.rg.Len() > 0 && a.rg.Start < b.rg.End && b.rg.Start < a.rg.End {
				return errAt(ErrCorrupt, b.field, b.off, "section %s overlaps %s %s", b.rg, a.field, a.rg)
			}
		}
	}
	return nil
}

// checkRange refuses a reversed range or one that ends past the file.
func (r *Reader) checkRange(field string, off int64, rg Range) error {
	if rg.End < rg.Start {
		return errAt(ErrCorrupt, field, off, "range %s has a negative length", rg)
	}
	if rg.End > uint64(r.size) {
		return errAt(ErrCorrupt, field, off, "range %s ends past the end of the %d-byte file", rg, r.size)
	}
	return nil
}

// readRefs reads a flat array of digests. Its size was checked against the
// file's, so the allocation is bounded by the file.
func (r *Reader) readRefs(field string, rg Range) ([]digest.Digest, error) {
	if rg.Len() == 0 {
		return nil, nil
	}
	b, err := r.readAt(field, rg.Start, rg.Len())
	if err != nil {
		return nil, err
	}
	size := r.hdr.algorithm.Size()
	refs := make([]digest.Digest, 0, len(b)/size)
	for len(b) > 0 {
		refs = append(refs, digest.MustNew(r.hdr.algorithm, b[:size]))
		b = b[size:]
	}
	return refs, nil
}

// ioTracker reads a compressed section for a decoder. It remembers the
// first error of the file underneath, so that an I/O error is not mistaken
// for corrupt data, and turns a file that ends inside the section into an
// error rather than an early end of the data.
type ioTracker struct {
	r     io.Reader
	left  int64 // bytes of the section not read yet
	field string
	off   int64 // where the section ends
	err   error
}

func (t *ioTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.left -= int64(n)
	if err == io.EOF && t.left > 0 {
		err = errAt(ErrCorrupt, t.field, t.off-t.left, "file ends before its stated size")
	}
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// openSection points the decoder at the compressed section rg. An error
// is the decoder's, for the caller to classify.
func (r *Reader) openSection(field string, rg Range) error {
	r.src = &ioTracker{
		r:     io.NewSectionReader(r.ra, int64(rg.Start), int64(rg.Len())),
		left:  int64(rg.Len()),
		field: field,
		off:   int64(rg.End),
	}
	if r.dec == nil {
		d, err := newDecoder(nil)
		if err != nil {
			return err
		}
		r.dec = d
	}
	return r.dec.Reset(r.src)
}

// sectionErr reports an error decompressing section field: the file's own
// error if it had one, else corrupt or over-limit zstd data.
func (r *Reader) sectionErr(err error, field string, off int64) error {
	if r.src != nil && r.src.err != nil {
		return ioErr(field, r.src.err)
	}
	return zstdErr(err, field, off)
}

// readNamedRefs decompresses the named references, no more than
// MaxNamedRefsSize bytes, and parses their "index:name\0" records. As in
// composefs-rs, a later record of the same name wins.
func (r *Reader) readNamedRefs() error {
	if r.info.NamedRefs.Len() == 0 {
		return nil
	}
	off := int64(r.info.NamedRefs.Start)
	if err := r.openSection("named_refs", r.info.NamedRefs); err != nil {
		return r.sectionErr(err, "named_refs", off)
	}
	lr := &io.LimitedReader{R: r.dec, N: MaxNamedRefsSize + 1}
	br := bufio.NewReader(lr)
	byName := make(map[string]NamedRef)
	for rec := 0; ; rec++ {
		line, err := br.ReadBytes(0)
		if lr.N <= 0 {
			return errAt(ErrLimit, "named_refs", off, "decompresses to more than %d bytes", MaxNamedRefsSize)
		}
		if err == io.EOF {
			if len(line) > 0 {
				return errAt(ErrCorrupt, "named_refs", off, "record %d (%q) has no NUL terminator", rec, trim(line))
			}
			break
		}
		if err != nil {
			return r.sectionErr(err, "named_refs", off)
		}
		nr, err := r.parseNamedRef(line[:len(line)-1])
		if err != nil {
			return errAt(ErrCorrupt, "named_refs", off, "record %d (%q): %v", rec, trim(line), err)
		}
		byName[nr.Name] = nr
	}
	r.named = make([]NamedRef, 0, len(byName))
	for _, nr := range byName {
		r.named = append(r.named, nr)
	}
	slices.SortFunc(r.named, func(a, b NamedRef) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// parseNamedRef parses one record without its NUL: UTF-8, a decimal index
// (Rust's usize parser takes one leading '+'), a colon, the name (the rest,
// colons and all).
func (r *Reader) parseNamedRef(rec []byte) (NamedRef, error) {
	if !utf8.Valid(rec) {
		return NamedRef{}, errors.New("not UTF-8")
	}
	idx, name, ok := bytes.Cut(rec, []byte{':'})
	if !ok {
		return NamedRef{}, errors.New("no colon")
	}
	digits := bytes.TrimPrefix(idx, []byte{'+'})
	i, err := strconv.ParseUint(string(digits), 10, 64) // no sign, no "_"
	if err != nil {
		return NamedRef{}, fmt.Errorf("index %q is not a non-negative integer", idx)
	}
	if i >= uint64(len(r.streams)) {
		return NamedRef{}, fmt.Errorf("index %d out of range of %d stream references", i, len(r.streams))
	}
	return NamedRef{Name: string(name), Index: int(i), Digest: r.streams[i]}, nil
}

// ioErr returns err, an error of the file while reading field, as it is if
// it is the Reader's own, else wrapped with the field.
func ioErr(field string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("splitstream: reading %s: %w", field, err)
}

// trim shortens a record for an error message.
func trim(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// Algorithm returns the fs-verity algorithm of the stream's digests.
func (r *Reader) Algorithm() fsverity.Algorithm { return r.hdr.algorithm }

// OldLayout reports whether the header has the layout composefs-rs wrote
// before it marked the header #[repr(C)] (bootc 1.15 and older).
func (r *Reader) OldLayout() bool { return r.hdr.old }

// Info returns the info section: where each section lies, the content type
// and the stream size.
func (r *Reader) Info() Info { return r.info }

// ContentType returns the stream's content type.
func (r *Reader) ContentType() ContentType { return r.info.ContentType }

// StreamSize returns the size of the reassembled stream, as recorded.
func (r *Reader) StreamSize() uint64 { return r.info.StreamSize }

// ObjectRefs returns the objects the stream refers to, in their on-disk
// order (for streams composefs-rs or a Writer made, first use in the
// chunks). External chunks refer to them by index.
func (r *Reader) ObjectRefs() []digest.Digest { return slices.Clone(r.objects) }

// StreamRefs returns the split streams the stream refers to, in their
// on-disk order. Named references refer to them by index.
func (r *Reader) StreamRefs() []digest.Digest { return slices.Clone(r.streams) }

// NamedRefs returns the named references, sorted by name, one per name.
func (r *Reader) NamedRefs() []NamedRef { return slices.Clone(r.named) }

// NamedRef returns the digest of the stream named name.
func (r *Reader) NamedRef(name string) (digest.Digest, bool) {
	i, ok := slices.BinarySearchFunc(r.named, name, func(nr NamedRef, n string) int { return strings.Compare(nr.Name, n) })
	if !ok {
		return digest.Digest{}, false
	}
	return r.named[i].Digest, true
}

// Close releases the decoder. The Reader can't be used afterwards.
func (r *Reader) Close() error {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	r.cs.err = errors.New("splitstream: reader closed")
	return nil
}
