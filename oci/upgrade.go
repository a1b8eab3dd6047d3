package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
)

func init() { repo.RegisterUpgrade("oci", upgradeStreams) }

// upgradeStreams rewrites the OCI images earlier gocfs pulled (a tag
// pointing at a gocfs-ss image record, gocfs-ss layer streams) into
// composefs-rs's split streams, so that composefs-rs reads them and its gc
// works on the repository: each layer stored again as
// streams/oci-layer-DIFFID (rebuilt byte for byte from the old stream; its
// objects are there already), the configuration and manifest as
// composefs-rs stores them, the configuration naming the image the pull
// made (composefs.image.v1, so it stays alive and mounts), and the tag
// moved to the manifest's stream. One image per transaction: a crash
// leaves the tag on the old record, and the next open for writing does it
// again. The old streams are left to gc. A repository without such tags
// costs one listing of streams/refs/oci/.
func upgradeStreams(ctx context.Context, r *repo.Repo) error {
	refs, err := r.StreamRefs(strings.TrimSuffix(refPrefix, "/"))
	if err != nil {
		return nil // no streams/refs/oci/: nothing to do
	}
	n := 0
	for _, ref := range refs {
		stream, d, err := r.ResolveStreamRef(ref)
		if err != nil || !strings.HasPrefix(stream, imageStreamPrefix) {
			continue
		}
		if err := upgradeImage(ctx, r, ref, d); err != nil {
			return fmt.Errorf("oci: %s: %w", ref, err)
		}
		n++
	}
	if n > 0 {
		r.Notice("upgraded %d OCI image(s) of %s from gocfs's earlier streams (gocfs-ss) to composefs-rs's split streams (oci-manifest-, oci-config-, oci-layer-); gc removes the old streams", n, r.Dir())
	}
	return nil
}

// upgradeImage rewrites the image whose tag ref points at the gocfs-ss
// record d (see upgradeStreams).
func upgradeImage(ctx context.Context, r *repo.Repo, ref string, d digest.Digest) error {
	rec, err := readRecord(r, d.Bytes())
	if err != nil {
		return err
	}
	s, err := recordSource(r, rec)
	if err != nil {
		return err
	}
	img, err := r.ParseDigest(rec.Image)
	if err != nil {
		return err
	}
	name := decodeTag(strings.TrimPrefix(ref, refPrefix))
	return r.Update(ctx, func(tx *repo.Tx) error {
		// The ref may have moved since it was read.
		if stream, cur, err := tx.Repo().ResolveStreamRef(ref); err != nil || !strings.HasPrefix(stream, imageStreamPrefix) || cur != d {
			return err
		}
		layers := make([][]byte, len(rec.Layers))
		for i, l := range rec.Layers {
			ld, err := upgradeLayer(ctx, tx, l)
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, l.DiffID, err)
			}
			layers[i] = ld.Bytes()
		}
		_, _, err := writeImageStreams(tx, s, layers, img, name)
		return err
	})
}

// upgradeLayer returns the composefs-rs split stream of the layer l,
// storing it from l's gocfs-ss stream if there is none.
func upgradeLayer(ctx context.Context, tx *repo.Tx, l LayerRecord) (digest.Digest, error) {
	if d, err := tx.ResolveStream(LayerStreamName(l.DiffID)); err == nil {
		return d, nil
	}
	h, err := v1.NewHash(l.DiffID)
	if err != nil {
		return digest.Digest{}, err
	}
	old, err := tx.Repo().ParseDigest(l.Stream)
	if err != nil {
		return digest.Digest{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayerStream(tx.Repo(), old.Bytes(), pw)) }()
	defer pr.Close()
	return importLayerTx(ctx, tx, h, pr)
}

// recordSource is the pull source of a record's image: its manifest and
// configuration, read from their objects and checked against their
// digests.
func recordSource(r *repo.Repo, rec *ImageRecord) (*source, error) {
	mraw, err := readObject(r, rec.Manifest, rec.ManifestDigest)
	if err != nil {
		return nil, err
	}
	craw, err := readObject(r, rec.Config, rec.ConfigDigest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(mraw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", rec.ManifestDigest, err)
	}
	md, err := v1.NewHash(rec.ManifestDigest)
	if err != nil {
		return nil, err
	}
	s := &source{kind: "repository", close: func() error { return nil }}
	desc := v1.Descriptor{Digest: md, Size: int64(len(mraw)), MediaType: types.MediaType(rec.MediaType)}
	if err := s.setImage(mraw, desc, m, craw); err != nil {
		return nil, err
	}
	return s, nil
}
