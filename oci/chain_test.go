package oci

import (
	"context"
	"errors"
	"testing"

	"github.com/gocfs/gocfs/repo"
)

// TestMergeLayers: the layers Pull stored, merged by MergeLayers, give
// Pull's image digest for digest, from the repository and from a cache
// (which a second merge reads); a layer the repository lacks is an error
// naming it, and nothing is named.
func TestMergeLayers(t *testing.T) {
	ctx := context.Background()
	img := testImage(t, testLayers())
	r := newTestRepo(t)
	res, err := Pull(ctx, r, "oci:"+writeLayout(t, img, "v1"), PullOptions{Name: "pulled"})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var diffIDs []string
	for _, h := range cf.RootFS.DiffIDs {
		diffIDs = append(diffIDs, h.String())
	}
	cache := NewLayerCache(1 << 20)
	for i, c := range []*LayerCache{nil, cache, cache} {
		d, err := MergeLayers(ctx, r, diffIDs, "merged", c)
		if err != nil {
			t.Fatal(err)
		}
		if d.Hex() != res.Image {
			t.Errorf("merge %d: image %s, Pull's is %s", i, d.Hex(), res.Image)
		}
	}
	if got, err := r.ResolveRef("merged"); err != nil || got.Hex() != res.Image {
		t.Errorf("merged names %v (%v), want %s", got, err, res.Image)
	}
	missing := "sha256:" + "00000000000000000000000000000000000000000000000000000000000000ab"
	_, err = MergeLayers(ctx, r, append(diffIDs, missing), "broken", cache)
	if !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("merging a missing layer: %v, want an error wrapping repo.ErrNotFound", err)
	}
	if _, err := r.ResolveRef("broken"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("the failed merge named an image: %v", err)
	}
}
