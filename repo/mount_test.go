package repo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
)

// TestMountVerity mounts an image of each kind of repository and compares
// it with its source. Where the file system has fs-verity (the fs-verity
// VM), overlayfs is made to require it: every file must then read back
// through its per-file digest, SHA-512 ones included.
func TestMountVerity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	src := sampleTree(t, 3)
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			if _, err := r.CreateImage(ctx, src, "app", CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			mode := mount.VerityTry
			if hasVerity(t, r.ObjectsDir()) {
				mode = mount.VerityRequire
			}
			mnt := filepath.Join(t.TempDir(), "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Mount("app", mnt, mount.Options{Verity: mode}); err != nil {
				t.Fatalf("mount (%v): %v", mode, err)
			}
			defer mount.UnmountLazy(mnt)
			t.Logf("mounted with verity %v", mode)
			testutil.CompareTrees(t, src, mnt, testutil.CompareOptions{ComposefsWhiteouts: true})
			if err := mount.Unmount(mnt); err != nil {
				t.Error(err)
			}
		})
	}
}

// hasVerity tells whether the file system of dir supports fs-verity.
func hasVerity(t *testing.T, dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, _, err = fsverity.Measure(d)
	return err == nil || errors.Is(err, fsverity.ErrNotEnabled)
}
