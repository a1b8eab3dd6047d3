package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
)

// MergeLayers stores the composefs image of the layers whose split
// streams the repository holds under the given diff IDs ("sha256:HEX",
// the bottom layer first), merged as [Pull] merges an image's layers
// (the zero [Rules], composefs-rs's), so that the same layers give the
// image Pull gives, digest for digest. The image is named images/refs/NAME when name is not empty. The layers are
// read before the repository lock is taken (from cache, when it is not
// nil and has them) and checked to be still there under it. It returns
// the image's digest.
func MergeLayers(ctx context.Context, r *repo.Repo, diffIDs []string, name string, cache *LayerCache) (digest.Digest, error) {
	if name != "" {
		if err := repo.CheckRefName(name); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: image name %q: %w", name, err)
		}
	}
	fs := newRootfs(Rules{})
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
		entries, err := cache.layer(r, streams[i], raw)
		if err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer %s: %w", id, err)
		}
		if err := fs.apply(entries); err != nil {
			return digest.Digest{}, fmt.Errorf("oci: layer %d (%s): %w", i, id, err)
		}
	}
	root, err := fs.finish(r.Algorithm())
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

// LayerCache keeps the parsed entries of recently merged layers, by the
// digest of their split stream (so an entry is never stale), for
// MergeLayers to merge chains that share layers without reading them
// again. It holds at most a given number of entries (files) in all; a
// nil *LayerCache caches nothing. It is safe for concurrent use.
type LayerCache struct {
	mu     sync.Mutex
	max    int
	size   int
	layers map[string][]entry
	order  []string // oldest first
}

// NewLayerCache returns a cache of at most maxEntries layer entries.
func NewLayerCache(maxEntries int) *LayerCache {
	return &LayerCache{max: maxEntries, layers: make(map[string][]entry)}
}

// layer returns the entries of the stored layer stream (its diff ID raw).
// The entries are shared: merging only reads them.
func (c *LayerCache) layer(r *repo.Repo, stream, raw []byte) ([]entry, error) {
	if c == nil {
		return storedLayer(r, stream, raw)
	}
	key := string(stream)
	c.mu.Lock()
	e, ok := c.layers[key]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := storedLayer(r, stream, raw)
	if err != nil || len(e) > c.max {
		return e, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.layers[key]; !ok {
		c.layers[key] = e
		c.order = append(c.order, key)
		c.size += len(e)
		for c.size > c.max {
			old := c.order[0]
			c.order = c.order[1:]
			c.size -= len(c.layers[old])
			delete(c.layers, old)
		}
	}
	return e, nil
}
