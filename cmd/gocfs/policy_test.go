package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
)

// TestMountRefusesMalformedImages runs every mount command on images the
// structural check refuses: an entry pointing past the end of the image
// (which the kernel would mount) and a root whose xattrs can't be read.
// Each exits 1 with the check's finding, says which mount failed once, and
// leaves no mount; --no-verify (noverify for mount.composefs) lets the kernel
// mount the first.
func TestMountRefusesMalformedImages(t *testing.T) {
	f := newCLIFixture(t)
	badEntry := filepath.Join(t.TempDir(), "bad-entry.cfs")
	badRoot := filepath.Join(t.TempDir(), "bad-root.cfs")
	for _, p := range []string{badEntry, badRoot} {
		b, err := os.ReadFile(f.img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testutil.SetEntryNid(t, badEntry, "size-0000000", 1<<40)
	testutil.PatchFile(t, badRoot, func(b []byte) { testutil.BreakRootXattrs(t, b) })
	dir := mountPoint(t)
	fuse := func(args ...string) []string {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			return nil
		}
		return args
	}
	for _, c := range []struct {
		helper bool
		args   []string
		want   string
	}{
		{args: []string{"mount", badEntry, dir, "--basedir", f.store}, want: "image failed the structural check"},
		{args: fuse("mount", "--fuse", badEntry, dir, "--basedir", f.store), want: "image failed the structural check"},
		{args: fuse("mount", "--fuse", badRoot, dir, "--basedir", f.store), want: "image failed the structural check"},
		{args: fuse("mount", "--fuse", "--no-verify", badRoot, dir, "--basedir", f.store), want: "root directory"},
		{helper: true, args: []string{badEntry, dir, "-o", "basedir=" + f.store}, want: "image failed the structural check"},
	} {
		if c.args == nil {
			continue
		}
		before := testutil.MountsMentioning(t, badEntry, badRoot, f.store, dir)
		var code int
		var out string
		if c.helper {
			code, out = runHelper(t, c.args...)
		} else {
			code, out = runGocfs(t, c.args...)
		}
		t.Logf("%q: exit %d: %s", c.args, code, strings.TrimSpace(out))
		if code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%q: exit %d, want 1 and %q", c.args, code, c.want)
		}
		prefix := "mounting "
		if c.helper {
			prefix = "failed to mount"
		}
		if n := strings.Count(out, prefix); n != 1 || strings.Count(out, "FUSE") > 1 {
			t.Errorf("%q: %q says %q %d times, want once", c.args, out, prefix, n)
		}
		if n := testutil.MountsMentioning(t, badEntry, badRoot, f.store, dir); n != before || testutil.IsMountPoint(t, dir) {
			t.Errorf("%q: %d mounts after the refusal, %d before", c.args, n, before)
		}
	}

	for _, args := range [][]string{
		{"mount", "--no-verify", "--fuse=false", badEntry, dir, "--basedir", f.store},
		{"mount", "-o", "noverify", "--fuse=false", badEntry, dir, "--basedir", f.store},
	} {
		if code, out := runGocfs(t, args...); code != 0 {
			t.Errorf("%q: exit %d: %s", args, code, out)
		}
		if err := mount.Unmount(dir); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	if code, out := runHelper(t, badEntry, dir, "-o", "noverify,basedir="+f.store); code != 0 {
		t.Errorf("mount.composefs -o noverify: exit %d: %s", code, out)
	}
	if err := mount.Unmount(dir); err != nil {
		t.Error(err)
	}
}

// TestRepoMountFUSE mounts a repository's image with --fuse --background,
// as it now can (the repository mount goes through package mounter): the
// mount is FUSE, nodev and nosuid, and "gocfs umount" removes it.
func TestRepoMountFUSE(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	bin := testutil.GocfsBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{})
	dir := filepath.Join(tmp, "repo")
	gocfs := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("gocfs %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	gocfs("--repo", dir, "init")
	gocfs("--repo", dir, "create-image", "--no-propagate-usr-to-root", src, "app")
	mnt := mountPoint(t)
	t.Logf("%s", gocfs("--repo", dir, "mount", "--fuse", "--background", "app", mnt))
	mi := testutil.MountAt(t, mnt)
	if mi == nil || mi.FSType != "fuse.composefs" {
		t.Fatalf("mount %+v, want fuse.composefs", mi)
	}
	for _, o := range []string{"nodev", "nosuid"} {
		if !strings.Contains(","+mi.Options+",", ","+o+",") {
			t.Errorf("mount options %q lack %s", mi.Options, o)
		}
	}
	testutil.CompareTrees(t, src, mnt, testutil.CompareOptions{})
	gocfs("umount", mnt)
	if testutil.IsMountPoint(t, mnt) {
		t.Errorf("still mounted after gocfs umount")
	}
}
