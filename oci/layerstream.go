package oci

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
)

// legacyLayerStreamPrefix starts the names of the layer streams gocfs
// wrote before it wrote composefs-rs's format ("gocfs-ss" streams); they
// are still read.
const legacyLayerStreamPrefix = "gocfs-oci-layer-"

// resolveLayer returns the digest of the split stream of the layer with
// the given diff ID ("sha256:HEX"): composefs-rs's oci-layer-DIFFID, else
// gocfs's earlier gocfs-oci-layer-DIFFID. resolve is Repo.ResolveStream or
// Tx.ResolveStream.
func resolveLayer(resolve func(string) (digest.Digest, error), diffID string) ([]byte, error) {
	d, err := resolve(LayerStreamName(diffID))
	if err != nil {
		if ld, lerr := resolve(legacyLayerStreamPrefix + diffID); lerr == nil {
			return ld.Bytes(), nil
		}
		return nil, err
	}
	return d.Bytes(), nil
}

// layerChunk is one piece of a stored layer: inline data, or an object of
// size bytes.
type layerChunk struct {
	inline []byte
	object []byte
	size   int64
}

// layerSource reads a stored layer's chunks, whichever its format.
type layerSource interface {
	next() (layerChunk, error)
	Close() error
}

// openLayer opens the layer split stream object stream. A stream in
// gocfs's earlier format must hold the layer diffID; one in composefs-rs's
// format does not record it, and is trusted for it by its name, as
// composefs-rs trusts it.
func openLayer(r *repo.Repo, stream, diffID []byte) (layerSource, error) {
	f, err := openObject(r, stream)
	if err != nil {
		return nil, err
	}
	var magic [len(splitstream.Magic)]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && string(magic[:]) == splitstream.Magic {
		f.Close()
		ss, f, err := openStream(r, stream, splitstream.TarLayer)
		if err != nil {
			return nil, err
		}
		if h := ss.Header(); diffID != nil && !bytes.Equal(h.SHA256[:], diffID) {
			ss.Close()
			f.Close()
			return nil, fmt.Errorf("oci: split stream %s holds the layer sha256:%x, not sha256:%x", fsverity.Hex(stream), h.SHA256, diffID)
		}
		return &legacySource{ss: ss, f: f}, nil
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("oci: split stream %s: %w", fsverity.Hex(stream), err)
	}
	ss, err := rsss.NewReader(f, st.Size(), rsss.WithAlgorithm(r.Algorithm()), rsss.WithContentType(rsss.ContentTypeOCILayer))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("oci: split stream %s: %w", fsverity.Hex(stream), err)
	}
	return &rsSource{r: r, ss: ss, f: f}, nil
}

// legacySource reads a gocfs-ss layer stream.
type legacySource struct {
	ss *splitstream.Reader
	f  *os.File
}

func (s *legacySource) next() (layerChunk, error) {
	c, err := s.ss.Next()
	if err != nil {
		return layerChunk{}, err
	}
	return layerChunk{inline: c.Inline, object: c.Object, size: c.Size}, nil
}

func (s *legacySource) Close() error {
	s.ss.Close()
	return s.f.Close()
}

// rsSource reads a composefs-rs layer stream; an object's size, which the
// stream does not record, is its file's.
type rsSource struct {
	r   *repo.Repo
	ss  *rsss.Reader
	f   *os.File
	buf []byte
}

func (s *rsSource) next() (layerChunk, error) {
	c, err := s.ss.Next()
	if err != nil {
		return layerChunk{}, err
	}
	if c.Inline {
		if uint64(cap(s.buf)) < c.Size {
			s.buf = make([]byte, c.Size)
		}
		b := s.buf[:c.Size]
		if _, err := io.ReadFull(s.ss, b); err != nil {
			return layerChunk{}, err
		}
		return layerChunk{inline: b, size: int64(c.Size)}, nil
	}
	f, err := s.r.OpenObject(c.Object)
	if err != nil {
		return layerChunk{}, fmt.Errorf("oci: %w", err)
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return layerChunk{}, fmt.Errorf("oci: object %s: %w", c.Object, err)
	}
	return layerChunk{object: c.Object.Bytes(), size: st.Size()}, nil
}

func (s *rsSource) Close() error {
	s.ss.Close()
	return s.f.Close()
}

// writeLayerStream writes the layer stored as the split stream stream to w,
// byte for byte.
func writeLayerStream(r *repo.Repo, stream []byte, w io.Writer) error {
	src, err := openLayer(r, stream, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	if rs, ok := src.(*rsSource); ok {
		_, err := rs.ss.Reassemble(w, func(d digest.Digest) (io.ReadCloser, error) { return r.OpenObject(d) })
		return err
	}
	return src.(*legacySource).ss.Cat(w, func(d []byte) (io.ReadCloser, error) {
		f, err := openObject(r, d)
		if err != nil {
			return nil, fmt.Errorf("oci: %w", err)
		}
		return f, nil
	})
}
