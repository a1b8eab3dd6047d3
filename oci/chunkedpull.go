package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/schema"
)

// maxChunkedWindow bounds the memory a zstd:chunked frame may ask of the
// decoder.
const maxChunkedWindow = 64 << 20

// chunkedLayer is a zstd:chunked layer fetched in part: its TOC's files,
// and the bytes of the blob fetched, at their offsets, in a sparse
// staging file.
type chunkedLayer struct {
	files   []chunkedFile
	limit   int64 // where the TOC's skippable frame starts
	staged  *os.File
	fetched int64 // bytes received, TOC included
}

// Close removes the staging file.
func (cl *chunkedLayer) Close() error { return cl.staged.Close() }

// fetchChunked fetches the parts of zstd:chunked layer i (TOC ref) the
// repository lacks: its TOC, checked against the annotation that names
// it, then, by range requests, the frames between the files' contents
// and the contents of files not found in the repository. No lock is held.
func (p *puller) fetchChunked(ctx context.Context, i int, ref chunkedTOCRef) (*chunkedLayer, error) {
	desc := p.s.layers[i]
	if left := p.budget.left(); left >= 0 && desc.Size > left {
		return nil, fmt.Errorf("%w: the blob is %d bytes, more than the %d left of what this pull may write (PullOptions.MaxBytes, oci pull --max-size)", ErrTooLarge, desc.Size, left)
	}
	p.report(i, Progress{Fetching: true, Total: desc.Size})
	start := ref.offset - skippableHeader
	frame := &memAt{base: start, b: make([]byte, skippableHeader+ref.length)}
	n, err := p.s.fetchRanges(ctx, i, []byteRange{{start, ref.offset + ref.length}}, frame)
	if err != nil {
		return nil, err
	}
	t, err := parseTOC(ref, frame.b)
	if err != nil {
		return nil, err
	}
	cl := &chunkedLayer{limit: start, fetched: n}
	if cl.files, err = t.files(start); err != nil {
		return nil, err
	}
	if err := p.findLocal(cl.files); err != nil {
		return nil, err
	}
	if cl.staged, err = p.r.StagingFile(); err != nil {
		return nil, err
	}
	n, err = p.s.fetchRanges(ctx, i, chunkedRanges(cl.files, cl.limit), cl.staged)
	cl.fetched += n
	if err != nil {
		cl.Close()
		return nil, err
	}
	p.report(i, Progress{Fetching: true, Done: desc.Size, Total: desc.Size, Finished: true})
	return cl, nil
}

// findLocal marks the files whose content the repository has.
func (p *puller) findLocal(files []chunkedFile) error {
	p.localMu.Lock()
	defer p.localMu.Unlock()
	if p.local == nil {
		lf, err := indexLocalFiles(p.r)
		if err != nil {
			return err
		}
		p.local = lf
	}
	for k := range files {
		files[k].local = p.local.find(&files[k])
	}
	return nil
}

// importChunked imports zstd:chunked layer i from what fetchChunked
// fetched and the repository's objects, under the repository lock: the
// archive is rebuilt byte for byte and imported as a fetched one is, and
// named once its diff ID is checked.
func (p *puller) importChunked(ctx context.Context, i int, cl *chunkedLayer) (*pulledLayer, error) {
	want, _ := hex.DecodeString(p.s.diffIDs[i].Hex) // checked by setImage
	var l *pulledLayer
	err := p.r.Update(ctx, func(tx *repo.Tx) error {
		l = &pulledLayer{result: LayerResult{DiffID: p.s.diffIDs[i].String(), Read: cl.fetched, Partial: true}}
		im := newImporter(p.r.Algorithm(), tx.Objects())
		sum, entries, err := unpackFrom(im, &budgetWriter{b: p.budget}, func(dst io.Writer) ([32]byte, error) {
			return cl.writeTar(ctx, p.r, dst)
		})
		if err != nil {
			return err
		}
		l, err = p.finishLayer(ctx, tx, i, im, l, sum, entries, want)
		if errors.Is(err, ErrDigestMismatch) {
			err = fmt.Errorf("%w (rebuilt from its zstd:chunked TOC: %w)", err, errTOC)
		}
		return err
	})
	return l, err
}

// writeTar writes the layer's archive to w and returns its SHA-256: the
// frames fetched, decompressed, with each file's content in between, from
// the repository or from its frames fetched (checked against the TOC's
// SHA-256).
func (cl *chunkedLayer) writeTar(ctx context.Context, r *repo.Repo, w io.Writer) ([32]byte, error) {
	var sum [32]byte
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxChunkedWindow))
	if err != nil {
		return sum, err
	}
	defer zd.Close()
	h := sha256.New()
	tw := io.MultiWriter(h, w)
	var pos int64
	for k := range cl.files {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		f := &cl.files[k]
		if err := cl.frames(zd, tw, pos, f.offset, f.name); err != nil {
			return sum, err
		}
		if err := cl.content(zd, r, tw, f); err != nil {
			return sum, err
		}
		pos = f.end
	}
	if err := cl.frames(zd, tw, pos, cl.limit, ""); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// frames decompresses the bytes [a, b) of the blob, what lies before the
// file named next (after the last file if next is "") to w.
func (cl *chunkedLayer) frames(zd *zstd.Decoder, w io.Writer, a, b int64, next string) error {
	if a == b {
		return nil
	}
	if err := zd.Reset(io.NewSectionReader(cl.staged, a, b-a)); err != nil {
		return err
	}
	if _, err := io.Copy(w, zd); err != nil {
		where := "after the last file"
		if next != "" {
			where = fmt.Sprintf("before %q", schema.Shorten(next))
		}
		return fmt.Errorf("%w: bytes %d-%d of the blob (%s): %w", errTOC, a, b, where, err)
	}
	return nil
}

// content writes file f's content to w: the repository's, or its frames
// decompressed and checked against the TOC.
func (cl *chunkedLayer) content(zd *zstd.Decoder, r *repo.Repo, w io.Writer, f *chunkedFile) error {
	var src io.Reader
	if f.local != nil {
		rc, err := f.local.open(r)
		if err != nil {
			return err
		}
		defer rc.Close()
		src = rc
	} else {
		if err := zd.Reset(io.NewSectionReader(cl.staged, f.offset, f.end-f.offset)); err != nil {
			return err
		}
		src = zd
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), io.LimitReader(src, f.size))
	if err == nil && n == f.size && f.local == nil {
		// The frames must end with the content.
		var one [1]byte
		if k, _ := io.ReadFull(zd, one[:]); k > 0 {
			err = errors.New("the frames hold more than the file's size")
		}
	}
	switch {
	case err != nil:
	case n != f.size:
		err = fmt.Errorf("%d bytes, the TOC says %d", n, f.size)
	case [32]byte(h.Sum(nil)) != f.sha:
		err = fmt.Errorf("%w: the content is sha256:%x, the TOC says sha256:%x", ErrDigestMismatch, h.Sum(nil), f.sha)
	}
	if err != nil {
		return fmt.Errorf("%w: member %q (bytes %d-%d of the blob): %w", errTOC, schema.Shorten(f.name), f.offset, f.end, err)
	}
	return nil
}

// memAt is a buffer written at offsets from base (the blob's bytes
// [base, base+len(b))).
type memAt struct {
	base int64
	b    []byte
}

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	off -= m.base
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("oci: bytes %d-%d: outside the range asked for", off+m.base, off+m.base+int64(len(p)))
	}
	return copy(m.b[off:], p), nil
}
