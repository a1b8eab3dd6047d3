package seal

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners, trusted xattrs, mounts)")
	}
}

// startRegistry starts Debian's docker-registry (CNCF distribution, which
// has no referrers API) on 127.0.0.1 and returns its address.
func startRegistry(t testing.TB) string {
	t.Helper()
	return testutil.StartRegistry(t).Addr
}

// tarLayer makes a gzip layer of files (name → content; a name ending in
// "/" is a directory).
func tarLayer(t testing.TB, files map[string]string, order ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, n := range order {
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(files[n]))}
		if strings.HasSuffix(n, "/") {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, files[n])
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage is a two-layer OCI image; variant changes the top layer.
func testImage(t testing.TB, variant string) v1.Image {
	t.Helper()
	base := tarLayer(t, map[string]string{"etc/": "", "etc/hostname": "gocfs\n", "usr/": "", "usr/big": strings.Repeat("composefs ", 500)}, "etc/", "etc/hostname", "usr/", "usr/big")
	top := tarLayer(t, map[string]string{"app/": "", "app/hello": "hello " + variant + "\n"}, "app/", "app/hello")
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

func push(t testing.TB, img v1.Image, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func newRepo(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// refused checks that a verified pull of ref failed with want, naming
// what, and left nothing named.
func refused(t *testing.T, ref string, opts PullOptions, want error, what string) {
	t.Helper()
	r := newRepo(t)
	opts.Name = "refused"
	_, _, err := Pull(context.Background(), r, ref, opts)
	if !errors.Is(err, want) || !strings.Contains(err.Error(), what) {
		t.Fatalf("pull %s: %v; want %v naming %q", ref, err, want, what)
	}
	t.Logf("refused as it should: %v", err)
	imgs, err := oci.Images(r)
	if err != nil || len(imgs) != 0 {
		t.Errorf("a refused image left names: %v %v", imgs, err)
	}
	if _, err := r.Resolve("refused"); err == nil {
		t.Error("a refused image left images/refs/refused")
	}
}
