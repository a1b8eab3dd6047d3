package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
)

// MergeLayers stores the composefs image of the layers whose split
// streams the repository holds under the given diff IDs ("sha256:HEX",
// the bottom layer first), merged as [Pull] merges an image's layers, so
// that the same layers give the image Pull gives, digest for digest. The
// image is named images/refs/NAME when name is not empty. The layers are
// read before the repository lock is taken and checked to be still there
// under it. It returns the image's digest.
func MergeLayers(ctx context.Context, r *repo.Repo, diffIDs []string, name string) (digest.Digest, error) {
	if name != "" {
		if err := repo.CheckRefName(name); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: image name %q: %w", name, err)
		}
	}
	fs := newRootfs()
	streams := make([][]byte, len(diffIDs))
	for i, id := range diffIDs {
		h, err := v1.NewHash(id)
		if err != nil || h.Algorithm != "sha256" {
			return digest.Digest{}, fmt.Errorf("oci: layer diff ID %q: want sha256:HEX (%v)", id, err)
		}
		raw, _ := hex.DecodeString(h.Hex)
		if streams[i], err = resolveLayer(r.ResolveStream, id); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer %s: %w", id, err)
		}
		entries, err := storedLayer(r, streams[i], raw)
		if err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer %s: %w", id, err)
		}
		if err := fs.apply(entries); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer %d (%s): %w", i, id, err)
		}
	}
	root, err := fs.tree(r.Algorithm())
	if err != nil {
		return digest.Digest{}, err
	}
	var d digest.Digest
	err = r.Update(ctx, func(tx *repo.Tx) error {
		for i, id := range diffIDs {
			if s, err := resolveLayer(tx.ResolveStream, id); err != nil || !bytes.Equal(s, streams[i]) {
				return fmt.Errorf("oci: layer %s: its split stream changed or went away while the image was built", id)
			}
		}
		img, err := tx.CommitTree(root, repo.CreateOptions{})
		if err != nil {
			return err
		}
		d = img.Digest
		if name != "" {
			return tx.SetImageRef(name, img.Digest)
		}
		return nil
	})
	return d, err
}

// The names by which an OCI layer removes what lower layers have, for
// writers of layers (the snapshotter turns overlayfs's whiteouts into
// them): WhiteoutPrefix before a name removes that name; OpaqueWhiteout,
// a member of a directory, removes everything lower layers have in it.
const (
	WhiteoutPrefix = whiteoutPrefix
	OpaqueWhiteout = whiteoutOpaque
)
