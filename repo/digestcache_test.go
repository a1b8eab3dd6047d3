package repo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/scan"
)

// CreateImage keeps a digest cache in the repository (of its algorithm),
// and the cache never names old content: a file rewritten with its size
// and mtime restored is stored anew, and the images of the same tree agree
// with and without the cache.
func TestCreateImageDigestCache(t *testing.T) {
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		t.Run(alg.String(), func(t *testing.T) {
			ctx := context.Background()
			r := newRepo(t, alg)
			defer r.Close()
			src := sampleTree(t, 7)
			p := filepath.Join(src, "cached-file")
			if err := os.WriteFile(p, bytes.Repeat([]byte{'a'}, 5000), 0o644); err != nil {
				t.Fatal(err)
			}
			// Files changed in the second before a scan are not cached.
			time.Sleep(2 * time.Second)
			first, err := r.CreateImage(ctx, src, "x", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := scan.OpenDigestCache(filepath.Join(r.Dir(), DigestCacheFile), alg)
			if err != nil || c.Discarded != "" {
				t.Fatalf("digest cache: %v %q", err, c.Discarded)
			}
			again, err := r.CreateImage(ctx, src, "y", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if again.Image != first.Image || again.NewObjects != 0 {
				t.Fatalf("same tree, cached: image %s (first %s), %d new objects", again.Image, first.Image, again.NewObjects)
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Repeat([]byte{'b'}, 5000), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
			changed, err := r.CreateImage(ctx, src, "z", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if changed.Image == first.Image || changed.NewObjects != 1 {
				t.Fatalf("content changed (size and mtime restored): image %s (before %s), %d new objects", changed.Image, first.Image, changed.NewObjects)
			}
			uncached, err := ReadDir(ctx, src, alg, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			id, err := r.TreeImageID(uncached)
			if err != nil {
				t.Fatal(err)
			}
			if id.Hex() != changed.Image {
				t.Fatalf("image with the cache %s, without %s", changed.Image, id.Hex())
			}
			res, err := r.Fsck(ctx)
			if err != nil || !res.OK() {
				t.Fatalf("fsck: %v %+v", err, res)
			}
		})
	}
}
