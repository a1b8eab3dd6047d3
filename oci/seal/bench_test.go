package seal

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/oci"
)

// benchLayout writes a sealed two-layer image of 2×1000 files (4 KiB
// each, 8 MiB) to an OCI layout, as "sealed".
func benchLayout(b *testing.B) string {
	b.Helper()
	var layers []v1.Layer
	for l := range 2 {
		files := map[string]string{fmt.Sprintf("d%d/", l): ""}
		order := []string{fmt.Sprintf("d%d/", l)}
		for i := range 1000 {
			n := fmt.Sprintf("d%d/f%04d", l, i)
			files[n] = strings.Repeat(fmt.Sprintf("%d-%d ", l, i), 4096)[:4096]
			order = append(order, n)
		}
		layers = append(layers, tarLayer(b, files, order...))
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		b.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	dir := filepath.Join(b.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	tagImage(b, p, img, "v1")
	if _, err := Seal(context.Background(), newRepo(b), "oci:"+dir+":v1", "oci:"+dir+":sealed", oci.PullOptions{}, nil); err != nil {
		b.Fatal(err)
	}
	return dir
}

// What verification costs a pull: the same sealed image pulled into a
// fresh repository, unverified and with --verify=sealed (the merged and
// per-layer EROFS generated and hashed once more).
func BenchmarkPullVerify(b *testing.B) {
	requireRoot(b)
	dir := benchLayout(b)
	for _, mode := range []Mode{VerifyNone, VerifySealed} {
		b.Run(mode.String(), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				r := newRepo(b)
				b.StartTimer()
				if _, _, err := Pull(context.Background(), r, "oci:"+dir+":sealed", PullOptions{Mode: mode}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
