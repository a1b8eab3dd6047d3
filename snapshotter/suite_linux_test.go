package snapshotter

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
)

// needRoot skips a test that mounts when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts overlayfs and composefs: needs root")
	}
}

// TestContainerdSuite runs containerd's own conformance suite for
// snapshotters (core/snapshots/testsuite): parents, labels, active,
// view and committed snapshots, the errors containerd expects, files
// changed, removed and moved across layers, 128 layers. It runs as
// "overlayfs": active snapshots are overlay mounts without redirect_dir,
// so renaming a directory of a lower layer fails (EXDEV) as it does with
// containerd's overlayfs snapshotter, and the suite knows to skip that.
func TestContainerdSuite(t *testing.T) {
	needRoot(t)
	testsuite.SnapshotterSuite(t, "overlayfs", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		sn, err := New(ctx, root, Options{})
		if err != nil {
			return nil, nil, err
		}
		return sn, func() error {
			err := sn.Close()
			unmountAll(t, root)
			return err
		}, nil
	})
}
