package oci

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// Candidate is an image a pull is about to store, as PullOptions.Check
// sees it: under the repository lock, after every blob was checked
// against its descriptor, before anything is named. Package oci/seal
// checks sealed digests and signatures here.
type Candidate struct {
	// Manifest and Config are the image's manifest and configuration,
	// byte for byte as the source has them; ManifestDigest is the
	// manifest's digest ("sha256:…").
	Manifest, Config []byte
	ManifestDigest   string
	// Root is the merged rootfs the composefs image is made of.
	Root *tree.Node

	r      *repo.Repo
	layers [][]entry
	sigs   map[digest.Digest][]byte
}

// SetSignature gives the object d (the composefs image, when d is its
// digest), if the pull stores it, the fs-verity builtin signature sig,
// which the kernel then checks when it enables fs-verity on it (see
// store.Writer.SetSignature).
func (c *Candidate) SetSignature(d digest.Digest, sig []byte) {
	if c.sigs == nil {
		c.sigs = make(map[digest.Digest][]byte)
	}
	c.sigs[d] = sig
}

// ImageID returns the digest the composefs image of Root will have in
// the repository.
func (c *Candidate) ImageID() (digest.Digest, error) { return c.r.TreeImageID(c.Root) }

// LayerImageIDs returns, for each layer bottom first, the digest of the
// composefs image the layer alone makes (merged onto an empty rootfs, as
// a one-layer image of it would be).
func (c *Candidate) LayerImageIDs() ([]digest.Digest, error) {
	out := make([]digest.Digest, len(c.layers))
	for i, entries := range c.layers {
		d, err := layerImageID(c.r, entries)
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d: %w", i, err)
		}
		out[i] = d
	}
	return out, nil
}

// layerImageID returns the digest of the composefs image of one layer's
// entries merged onto an empty rootfs.
func layerImageID(r *repo.Repo, entries []entry) (digest.Digest, error) {
	fs := newRootfs(Rules{})
	if err := fs.apply(entries); err != nil {
		return digest.Digest{}, err
	}
	root, err := fs.finish(r.Algorithm())
	if err != nil {
		return digest.Digest{}, err
	}
	return r.TreeImageID(root)
}

// LayerImageIDs returns, for each layer of the stored OCI image called
// name (bottom first), the digest of the composefs image that layer alone
// makes, computed from its split stream; nothing is stored. These are the
// per-layer digests of composefs's sealing specification.
func LayerImageIDs(ctx context.Context, r *repo.Repo, name string) ([]digest.Digest, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := lookupRecord(r, name)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(rec.Layers))
	for i, l := range rec.Layers {
		sd, err := r.ParseDigest(l.Stream)
		if err != nil {
			return nil, err
		}
		want, err := hex.DecodeString(strings.TrimPrefix(l.DiffID, "sha256:"))
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d: diff ID %s: %w", i, l.DiffID, err)
		}
		entries, err := storedLayer(r, sd.Bytes(), want)
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
		if out[i], err = layerImageID(r, entries); err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return out, nil
}
