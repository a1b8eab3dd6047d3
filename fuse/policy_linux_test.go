//go:build linux

package fuse

import (
	"os"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
)

// TestServeFailureLeavesNoMount makes go-fuse's mount check fail after the
// kernel mount is made (the root the server reports has a size past
// 2^63, as a corrupt extended inode can: the kernel marks the mount's root
// bad and every access fails with EIO) and checks that serve unmounts
// again instead of leaving a dead mount.
func TestServeFailureLeavesNoMount(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	f := sample(t, testutil.DefaultSampleOptions())
	opts := mount.Options{Basedirs: []string{f.store}}
	fsys := newFileSystem(&opts)
	closers, err := fsys.openStores(opts.Basedirs)
	for _, c := range closers {
		defer c.Close()
	}
	must(t, err)
	img, err := os.Open(f.img)
	must(t, err)
	defer img.Close()
	root, err := fsys.openRoot(img, f.img)
	must(t, err)
	bad := *root.in
	bad.Size = 1<<63 + 4096
	root.in = &bad

	dir := target(t)
	before := testutil.MountsMentioning(t, f.img, f.store, dir)
	srv, err := serve(dir, root, fsys, mountOptions(f.img, &opts))
	if err == nil {
		srv.Unmount()
		t.Fatal("serving a root of an impossible size worked")
	}
	t.Logf("error: %v", err)
	if n := testutil.MountsMentioning(t, f.img, f.store, dir); n != before || testutil.IsMountPoint(t, dir) {
		t.Errorf("%d mounts after the failure, %d before: a dead mount is left", n, before)
	}
}
