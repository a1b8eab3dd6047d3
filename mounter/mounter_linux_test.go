//go:build linux

package mounter_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/repo"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }

// methods are the two ways of mounting, each as a test names it.
var methods = []struct {
	name   string
	method mount.Method
}{{"kernel", mount.Kernel}, {"fuse", mount.FUSE}}

// requireMethod skips the test when the machine can't mount that way.
func requireMethod(t *testing.T, m mount.Method) {
	t.Helper()
	testutil.RequireRoot(t)
	if m == mount.FUSE {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			t.Skipf("no /dev/fuse: %v", err)
		}
	}
}

// mountPoint returns a fresh directory, unmounted at the end of the test
// if something is left there.
func mountPoint(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, dir) {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	return dir
}

// hostileTree makes a source tree an untrusted image could hold: a
// world-writable character device (1:3, the null device), a block device
// (7:0, the first loop device) and a copy of id(1) that is setuid to user
// nobody.
func hostileTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(dir, 0o755))
	must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.Chmod(filepath.Join(dir, "null"), 0o666))
	must(t, unix.Mknod(filepath.Join(dir, "disk"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))))
	id, err := exec.LookPath("id")
	if err != nil {
		t.Skipf("no id(1) to make a setuid program of: %v", err)
	}
	b, err := os.ReadFile(id)
	must(t, err)
	suid := filepath.Join(dir, "suid-id")
	must(t, os.WriteFile(suid, b, 0o755))
	must(t, os.Chown(suid, 65534, 65534))
	must(t, os.Chmod(suid, 0o4755|os.ModeSetuid))
	return dir
}

// TestUntrustedNodevNosuid mounts an image holding devices and a setuid
// program the way --repo mount and oci mount do (repo.Repo.Mount): by
// default, with the kernel as with FUSE, the mount is nodev and nosuid,
// so that the device nodes do not open and the setuid bit does nothing;
// AllowDevices and AllowSetuid turn both back on.
func TestUntrustedNodevNosuid(t *testing.T) {
	testutil.RequireRoot(t)
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{}, repo.Options{})
	must(t, err)
	if _, err := r.CreateImage(context.Background(), hostileTree(t), "hostile", repo.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			requireMethod(t, m.method)
			dir := mountPoint(t)
			mt, err := r.Mount("hostile", dir, mount.Options{Method: m.method})
			if err != nil {
				t.Fatal(err)
			}
			checkFlags(t, dir, true)
			for _, dev := range []string{"null", "disk"} {
				f, err := os.Open(filepath.Join(dir, dev))
				if err == nil {
					f.Close()
					t.Errorf("%s: opened a device node of an untrusted image", dev)
				} else if !errors.Is(err, unix.EACCES) {
					t.Errorf("%s: %v, want EACCES", dev, err)
				}
			}
			if uid := runID(t, dir); uid != "0" {
				t.Errorf("the setuid program ran as uid %s, want 0 (nosuid)", uid)
			}
			must(t, mt.Unmount())

			mt, err = r.Mount("hostile", dir, mount.Options{Method: m.method, AllowDevices: true, AllowSetuid: true})
			if err != nil {
				t.Fatal(err)
			}
			defer mt.Unmount()
			checkFlags(t, dir, false)
			f, err := os.OpenFile(filepath.Join(dir, "null"), os.O_WRONLY, 0)
			if err != nil {
				t.Errorf("with AllowDevices: %v", err)
			} else {
				f.Close()
			}
			if uid := runID(t, dir); uid != "65534" {
				t.Errorf("with AllowSetuid the setuid program ran as uid %s, want 65534", uid)
			}
		})
	}
}

// checkFlags checks the mount flags of dir, in the mount table and from
// statfs.
func checkFlags(t *testing.T, dir string, want bool) {
	t.Helper()
	mi := testutil.MountAt(t, dir)
	if mi == nil {
		t.Fatalf("nothing mounted on %s", dir)
	}
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	opts := "," + mi.Options + ","
	for _, f := range []struct {
		name string
		flag int64
	}{{"nodev", unix.ST_NODEV}, {"nosuid", unix.ST_NOSUID}} {
		if strings.Contains(opts, ","+f.name+",") != want || (st.Flags&f.flag != 0) != want {
			t.Errorf("%s mount (%s): %s is %v in the mount table (%s), statfs flags %#x; want %v", mi.FSType, dir, f.name, !want, mi.Options, st.Flags, want)
		}
	}
}

// runID runs the setuid copy of id(1) in dir and returns the effective uid
// it prints. A shell runs it: this process may be the FUSE server of dir,
// and execve of a file it serves, right after fork, would deadlock it (the
// server would wait for the world to stop, the forking thread for execve).
func runID(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", `exec "$0" -u`, filepath.Join(dir, "suid-id")).Output()
	if err != nil {
		t.Fatalf("running the setuid program: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestRefusesMalformedImage mounts an image with a directory entry that
// points past the end of the image: the kernel mounts it (and only fails
// when the entry is looked up), but every mount refuses it first, with the
// structural check's finding, and nothing is left mounted.
func TestRefusesMalformedImage(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{})
	base := t.TempDir()
	img, store := filepath.Join(base, "bad.cfs"), filepath.Join(base, "objects")
	must(t, os.Mkdir(store, 0o755))
	testutil.Mkcomposefs(t, src, img, store)
	testutil.SetEntryNid(t, img, "size-0000000", 1<<40)

	// The kernel takes it as it is.
	dir := mountPoint(t)
	if err := mount.Mount(img, dir, mount.Options{Basedirs: []string{store}, NoVerify: true}); err != nil {
		t.Fatalf("kernel mount without the check: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "size-0000000")); err == nil {
		t.Errorf("the corrupt entry reads")
	}
	must(t, mount.Unmount(dir))

	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			requireMethod(t, m.method)
			dir := mountPoint(t)
			before := testutil.MountsMentioning(t, base, dir)
			_, err := mounter.Mount(img, dir, mount.Options{Basedirs: []string{store}, Method: m.method})
			if !errors.Is(err, mount.ErrInvalidImage) || !strings.Contains(err.Error(), "/size-0000000") || !strings.Contains(err.Error(), "nid") {
				t.Errorf("%v, want ErrInvalidImage naming the entry", err)
			} else {
				t.Logf("refused: %v", err)
			}
			if n := testutil.MountsMentioning(t, base, dir); n != before || testutil.IsMountPoint(t, dir) {
				t.Errorf("%d mounts after the refusal, %d before", n, before)
			}
		})
	}
}

// TestRefusesCorruptRoot mounts an image whose root's xattrs can't be
// read, with and without the structural check: refused either way, with
// nothing left mounted (the FUSE server used to leave a dead mount, which
// failed the kernel's first look at the root's ACL).
func TestRefusesCorruptRoot(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{})
	base := t.TempDir()
	img, store := filepath.Join(base, "bad.cfs"), filepath.Join(base, "objects")
	must(t, os.Mkdir(store, 0o755))
	testutil.Mkcomposefs(t, src, img, store)
	testutil.PatchFile(t, img, func(b []byte) { testutil.BreakRootXattrs(t, b) })
	for _, m := range methods {
		for _, noVerify := range []bool{false, true} {
			if m.method == mount.Kernel && noVerify {
				continue // the kernel's business then
			}
			t.Run(m.name, func(t *testing.T) {
				requireMethod(t, m.method)
				dir := mountPoint(t)
				before := testutil.MountsMentioning(t, base, dir)
				_, err := mounter.Mount(img, dir, mount.Options{Basedirs: []string{store}, Method: m.method, NoVerify: noVerify})
				if err == nil || !strings.Contains(err.Error(), "xattr") ||
					!(errors.Is(err, mount.ErrInvalidImage) || strings.Contains(err.Error(), "root directory")) {
					t.Errorf("NoVerify %v: %v, want an error about the root's xattrs", noVerify, err)
				} else {
					t.Logf("NoVerify %v: %v", noVerify, err)
				}
				if n := testutil.MountsMentioning(t, base, dir); n != before || testutil.IsMountPoint(t, dir) {
					t.Errorf("NoVerify %v: %d mounts after the refusal, %d before", noVerify, n, before)
				}
			})
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
