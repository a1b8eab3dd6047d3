package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
)

// MountImage mounts images/DIGEST only: a digest that is not linked there
// is not found, even when a reference has its name (Resolve would follow
// that), and a digest of another algorithm is not found either.
func TestMountImageNamesNoReference(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("x", 100)), 0o644)
	r, err := Init(filepath.Join(dir, "repo"), InitOptions{Algorithm: fsverity.SHA256}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.CreateImage(context.Background(), src, "", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("1", 64)
	if err := r.Tag(other, res.Image); err != nil {
		t.Fatal(err)
	}
	if d, err := r.Resolve(other); err != nil || d != res.Digest {
		t.Fatalf("Resolve(%s) = %v, %v: the reference should resolve", other, d, err)
	}
	target := filepath.Join(dir, "mnt")
	os.Mkdir(target, 0o755)
	for _, s := range []string{other, strings.Repeat("2", 128)} {
		d, err := digest.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := r.MountImage(d, target, mount.Options{}); !errors.Is(err, ErrNotFound) {
			if m != nil {
				m.Unmount()
			}
			t.Errorf("MountImage(%.8s…) = %v, want ErrNotFound", s, err)
		}
	}
}
