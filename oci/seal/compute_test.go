package seal

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// compute-id in both algorithms the specification allows for 4 KiB
// blocks: the digests a repository computes in the other algorithm are
// those a repository of that algorithm stores; and the repository's own
// are the image pull stored.
func TestComputeBothAlgorithms(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := writeTestLayout(t)
	repos := map[fsverity.Algorithm]*repo.Repo{}
	pulled := map[fsverity.Algorithm]string{}
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Insecure: true, Algorithm: alg}, repo.Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := oci.Pull(ctx, r, "oci:"+dir+":v1", oci.PullOptions{Name: "app"})
		if err != nil {
			t.Fatal(err)
		}
		repos[alg], pulled[alg] = r, res.Image
	}
	for own, r := range repos {
		for _, a := range []Algorithm{SHA256_12, SHA512_12} {
			d, err := Compute(ctx, r, "app", a)
			if err != nil {
				t.Fatal(err)
			}
			if d.Merged.Hex() != pulled[a.Hash] {
				t.Errorf("a %s repository computes the %s merged digest %s; a %s repository stored %s", own, a, d.Merged.Hex(), a.Hash, pulled[a.Hash])
			}
			if len(d.Layers) != 2 || d.Merged.Algorithm() != a.Hash || d.Config.Algorithm() != a.Hash {
				t.Errorf("%s: %d layers, algorithms %s %s", a, len(d.Layers), d.Merged.Algorithm(), d.Config.Algorithm())
			}
		}
	}
	if _, err := Compute(ctx, repos[fsverity.SHA256], "app", SHA512_16); err == nil {
		t.Error("64 KiB blocks were computed")
	}
}
