package oci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/repo"
)

// zstdMagic starts a zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// publishAhead is how many bytes of a layer's new objects are published
// at a time while it is imported (store.Writer.FlushAhead): their content
// goes to disk during the import rather than all at its end.
var publishAhead int64 = 64 << 20

// importLayer imports layer i from its blob (checked against its
// descriptor as it is read, unless verified) under the repository lock:
// its files become objects, the layer a split stream, named once its diff
// ID is checked.
func (p *puller) importLayer(ctx context.Context, i int, blob io.Reader, verified bool) (*pulledLayer, error) {
	desc, diffID := p.s.layers[i], p.s.diffIDs[i]
	want, _ := hex.DecodeString(diffID.Hex) // checked by setImage
	var v *verifier
	if !verified {
		var err error
		if v, err = newVerifier("blob", desc, blob); err != nil {
			return nil, err
		}
		blob = v
	}
	var l *pulledLayer
	err := p.r.Update(ctx, func(tx *repo.Tx) error {
		var err error
		l, err = p.unpackLayer(ctx, tx, i, blob, v, want)
		return err
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// unpackLayer imports layer i in the transaction tx.
// v, when not nil, is the verifier blob reads through.
func (p *puller) unpackLayer(ctx context.Context, tx *repo.Tx, i int, blob io.Reader, v *verifier, want []byte) (*pulledLayer, error) {
	desc, diffID := p.s.layers[i], p.s.diffIDs[i]
	objs := tx.Objects()
	objs.FlushAhead(publishAhead)
	l := &pulledLayer{result: LayerResult{DiffID: diffID.String()}}
	src := &countingReader{ctx: ctx, r: blob, report: func(k int64) { p.report(i, Progress{Done: k, Total: desc.Size}) }}
	p.report(i, Progress{Total: desc.Size})
	im := newImporter(p.r.Algorithm(), objs)
	bw := &budgetWriter{b: p.budget}
	sum, entries, err := unpack(im, src, v, bw)
	if errors.Is(err, errTailGaveUp) {
		p.budget.used.Add(-bw.n) // the import starts again
	}
	if err != nil {
		return nil, err
	}
	l.result.Read = src.n
	p.report(i, Progress{Done: src.n, Total: desc.Size, Finished: true})
	return p.finishLayer(ctx, tx, i, im, l, sum, entries, want)
}

// finishLayer names layer i's split stream in tx once the archive
// imported (its SHA-256 sum) is checked against the diff ID want, and the
// layers before it are named.
func (p *puller) finishLayer(ctx context.Context, tx *repo.Tx, i int, im *importer, l *pulledLayer, sum [32]byte, entries []entry, want []byte) (*pulledLayer, error) {
	diffID := p.s.diffIDs[i]
	if !bytes.Equal(sum[:], want) {
		return nil, fmt.Errorf("%w: the layer unpacks to diff ID sha256:%x, the configuration says %s", ErrDigestMismatch, sum, diffID)
	}
	if err := p.order.wait(ctx, i); err != nil {
		return nil, err
	}
	// The objects are published with the stream, when tx commits (one
	// syncfs for both).
	l.entries, l.result.Files = entries, im.files
	l.result.NewObjects, _ = tx.Objects().Stats()
	d, err := tx.PutStream(LayerStreamName(diffID.String()), im.ss)
	if err != nil {
		return nil, err
	}
	l.stream = d.Bytes()
	return l, nil
}

// unpack decompresses a layer blob and imports the tar archive: the
// decompressor runs in a goroutine of its own, feeding the importer
// through a pipe, and counts what it writes on limit. It returns the
// archive's SHA-256 and entries.
//
// v, when not nil, is the verifier of the blob, which blob reads
// through: decompress takes over its hashing where it can.
func unpack(im *importer, blob io.Reader, v *verifier, limit *budgetWriter) ([32]byte, []entry, error) {
	return unpackFrom(im, limit, func(dst io.Writer) ([32]byte, error) { return decompress(dst, blob, v) })
}

// unpackFrom imports the tar archive that produce writes (returning its
// SHA-256), produce running in a goroutine of its own.
func unpackFrom(im *importer, limit *budgetWriter, produce func(io.Writer) ([32]byte, error)) ([32]byte, []entry, error) {
	pr, pw := io.Pipe()
	type result struct {
		sum [32]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		limit.w = pw
		sum, err := produce(limit)
		pw.CloseWithError(err)
		done <- result{sum, err}
	}()
	entries, err := im.importTar(pr)
	if err != nil {
		pr.CloseWithError(err)
		if res := <-done; res.err != nil && !errors.Is(res.err, err) && !errors.Is(res.err, io.ErrClosedPipe) {
			// The source failed first: that is the error to tell.
			return res.sum, nil, res.err
		}
		return [32]byte{}, nil, err
	}
	res := <-done
	return res.sum, entries, res.err
}

// budgetWriter writes to w what the pull's budget allows.
type budgetWriter struct {
	w io.Writer
	b *budget
	n int64 // bytes taken
}

func (bw *budgetWriter) Write(p []byte) (int, error) {
	if !bw.b.take(int64(len(p))) {
		return 0, fmt.Errorf("%w: the layers unpack to more than %d bytes, the most this pull may write (PullOptions.MaxBytes, oci pull --max-size)", ErrTooLarge, bw.b.limit)
	}
	bw.n += int64(len(p))
	return bw.w.Write(p)
}

// storedLayer reads the entries of a layer from its split stream.
func storedLayer(r *repo.Repo, stream, diffID []byte) ([]entry, error) {
	src, err := openLayer(r, stream, diffID)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return replayLayer(src, r.Algorithm())
}

// countingReader counts what is read, reports it now and then, and stops
// when its context is done.
type countingReader struct {
	ctx    context.Context
	r      io.Reader
	n      int64
	report func(int64)
	last   time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	k, err := c.r.Read(p)
	c.n += int64(k)
	if now := time.Now(); now.Sub(c.last) >= 50*time.Millisecond {
		c.last = now
		c.report(c.n)
	}
	return k, err
}

// decompress copies the uncompressed content of src to dst (gzip and zstd
// are recognized by their magic numbers, anything else is copied as it
// is) and returns its SHA-256. src is read to its end. v, when not nil,
// is the verifier src reads the blob through: where it can, decompress
// hashes the blob itself, together with what it unpacks to, and checks
// its digest at the end.
func decompress(dst io.Writer, src io.Reader, v *verifier) ([32]byte, error) {
	var sum [32]byte
	hashArchive, archiveSum := archiveHash(v)
	if v != nil && v.pair == nil {
		v = nil // it checks the blob itself
	}
	br := bufio.NewReaderSize(src, 256<<10)
	dr, closeDr, err := decompressor(br)
	if err != nil {
		return sum, err
	}
	defer closeDr()
	buf := make([]byte, 256<<10)
	err = copyFull(writerFunc(func(p []byte) (int, error) {
		hashArchive(p)
		return dst.Write(p)
	}), dr, buf)
	if err == nil {
		// Read the blob to its end (where its digest is checked).
		_, err = io.CopyBuffer(io.Discard, onlyReader{br}, buf)
	}
	if v != nil && v.ended() {
		// A blob that ended is checked first: when it is not the one
		// named, that is why decompressing it failed.
		if cerr := v.checkDeferred(); cerr != nil {
			return sum, cerr
		}
	}
	if err != nil {
		return sum, err
	}
	if v != nil && !v.ended() {
		return sum, fmt.Errorf("oci: %s %s: read to its end, but not to io.EOF", v.what, v.d.Digest)
	}
	copy(sum[:], archiveSum())
	return sum, nil
}

// archiveHash returns what hashes the uncompressed archive, and its sum:
// the verifier v's, paired with the blob, where it can (deferHash), else
// a SHA-256 of its own.
func archiveHash(v *verifier) (write func([]byte), sum func() []byte) {
	if v != nil && v.deferHash() {
		return v.hashArchive, v.archiveSum
	}
	h := sha256.New()
	return func(p []byte) { h.Write(p) }, func() []byte { return h.Sum(nil) }
}

// decompressor returns the reader of br's uncompressed content, by its
// magic number, and what closes it.
func decompressor(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return gz, func() { gz.Close() }, nil
	case bytes.Equal(magic, zstdMagic):
		zd, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zd.IOReadCloser(), zd.Close, nil
	}
	return br, func() {}, nil
}

// writerFunc is a function as an io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// copyFull copies src to dst to its end in writes of len(buf) bytes (but
// the last): a decompressor's reads are small (a window's worth), and
// each write to the importer's pipe costs a hand-off between goroutines,
// and a write of an object's content a system call.
func copyFull(dst io.Writer, src io.Reader, buf []byte) error {
	for {
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var k int
			k, err = src.Read(buf[n:])
			n += k
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
