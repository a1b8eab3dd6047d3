package snapshotter

import (
	"os"
	"path/filepath"
	"testing"

	cfsmount "github.com/gocfs/gocfs/mount"
)

// unmountAll unmounts the chain mounts under a snapshotter's root.
func unmountAll(t testing.TB, root string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(root, mountsDir))
	for _, e := range entries {
		p := filepath.Join(root, mountsDir, e.Name())
		if m, _ := isMounted(p); m {
			if err := cfsmount.UnmountLazy(p); err != nil {
				t.Errorf("unmounting %s: %v", p, err)
			}
		}
	}
}
