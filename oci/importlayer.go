package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
)

// ImportLayer stores the tar archive read from src (gzip or zstd
// compressed, or not) as the layer whose diff ID is diffID (sha256:HEX),
// as cfsctl oci import-layer does: its files become objects, the archive a
// split stream, streams/oci-layer-DIFFID, named also streams/refs/NAME
// when name is not empty. The archive must have that diff ID; nothing is
// named otherwise. It returns the stream's digest.
func ImportLayer(ctx context.Context, r *repo.Repo, diffID string, src io.Reader, name string) (digest.Digest, error) {
	h, err := v1.NewHash(diffID)
	if err != nil || h.Algorithm != "sha256" {
		return digest.Digest{}, fmt.Errorf("oci: layer diff ID %q: want sha256:HEX (%v)", diffID, err)
	}
	if name != "" {
		if err := repo.CheckRefName(name); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer name %q: %w", name, err)
		}
	}
	var d digest.Digest
	err = r.Update(ctx, func(tx *repo.Tx) error {
		var err error
		if d, err = importLayerTx(ctx, tx, h, src); err != nil {
			return err
		}
		if name != "" {
			return tx.SetStreamRef(name, LayerStreamName(h.String()))
		}
		return nil
	})
	return d, err
}

// importLayerTx stores the tar archive read from src as the split stream
// streams/oci-layer-DIFFID of the layer whose diff ID is h, in the
// transaction: its files as objects; the archive must have that diff ID.
func importLayerTx(ctx context.Context, tx *repo.Tx, h v1.Hash, src io.Reader) (digest.Digest, error) {
	want, _ := hex.DecodeString(h.Hex)
	objs := tx.Objects()
	im := newImporter(tx.Repo().Algorithm(), objs)
	sum, _, err := unpack(im, &countingReader{ctx: ctx, r: src, report: func(int64) {}}, nil, &budgetWriter{b: &budget{limit: -1}})
	if err != nil {
		return digest.Digest{}, fmt.Errorf("oci: layer %s: %w", h, err)
	}
	if !bytes.Equal(sum[:], want) {
		return digest.Digest{}, fmt.Errorf("%w: the layer is sha256:%x, not %s", ErrDigestMismatch, sum, h)
	}
	if err := objs.Flush(); err != nil {
		return digest.Digest{}, err
	}
	return tx.PutStream(LayerStreamName(h.String()), im.ss)
}
