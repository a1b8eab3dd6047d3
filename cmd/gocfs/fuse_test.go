package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"golang.org/x/sys/unix"
)

// TestMountFlagsToOptions checks how "gocfs mount" turns its flags into
// mount options: this package's defaults (verity try, nodev, nosuid,
// verified), -o on top, the flags on top of that.
func TestMountFlagsToOptions(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    func(*mount.Options)
		wantErr string
	}{
		{args: nil, want: func(*mount.Options) {}},
		{args: []string{"--verity"}, want: func(o *mount.Options) { o.Verity = mount.VerityRequire }},
		{args: []string{"--verity=require"}, want: func(o *mount.Options) { o.Verity = mount.VerityRequire }},
		{args: []string{"--verity=true"}, want: func(o *mount.Options) { o.Verity = mount.VerityRequire }},
		{args: []string{"--verity=try"}, want: func(o *mount.Options) { o.Verity = mount.VerityTry }},
		{args: []string{"--tryverity"}, want: func(o *mount.Options) { o.Verity = mount.VerityTry }},
		{args: []string{"--verity=off"}, want: func(o *mount.Options) { o.Verity = mount.VerityOff }},
		{args: []string{"--verity=false"}, want: func(o *mount.Options) { o.Verity = mount.VerityOff }},
		{args: []string{"-o", "verity"}, want: func(o *mount.Options) { o.Verity = mount.VerityRequire }},
		{args: []string{"-o", "verity", "--verity=off"}, want: func(o *mount.Options) { o.Verity = mount.VerityOff }},
		{args: []string{"--no-verify"}, want: func(o *mount.Options) { o.NoVerify = true }},
		{args: []string{"-o", "noverify"}, want: func(o *mount.Options) { o.NoVerify = true }},
		{args: []string{"--allow-devices", "--allow-suid"}, want: func(o *mount.Options) { o.AllowDevices, o.AllowSetuid = true, true }},
		{args: []string{"-o", "dev,suid"}, want: func(o *mount.Options) { o.AllowDevices, o.AllowSetuid = true, true }},
		{args: []string{"-o", "dev", "--allow-devices=false"}, want: func(*mount.Options) {}},
		{args: []string{"--fuse"}, want: func(o *mount.Options) { o.Method = mount.FUSE }},
		{args: []string{"--fuse=false"}, want: func(o *mount.Options) { o.Method = mount.Kernel }},
		{args: []string{"--allow-other=false"}, want: func(o *mount.Options) { o.FUSE.AllowOther = false }},
		{args: []string{"--verity=maybe"}, wantErr: "want require, try or off"},
		{args: []string{"-o", "bogus"}, wantErr: `unsupported option "bogus"`},
	} {
		f := &mountFlags{}
		cmd := mountCmd(f)
		err := cmd.ParseFlags(c.args)
		var got mount.Options
		if err == nil {
			got, err = f.mountOptions(cmd)
		}
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: %v, want an error containing %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		want := mount.Options{FUSE: mount.FUSEOptions{AllowOther: os.Geteuid() == 0}}
		c.want(&want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: options %+v, want %+v", c.args, got, want)
		}
	}
	cmd := newMountCmd()
	if err := cmd.ParseFlags([]string{"--verity", "--tryverity"}); err == nil {
		if err := cmd.ValidateFlagGroups(); err == nil || !strings.Contains(err.Error(), "none of the others can be") {
			t.Errorf("--verity --tryverity: %v", err)
		}
	}
}

// requireFUSE skips the test when FUSE mounts cannot be made here.
func requireFUSE(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("FUSE mounts need Linux")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse (%v): FUSE mounts need the fuse kernel module", err)
	}
}

// waitMounted waits until something is mounted on dir, or fails.
func waitMounted(t *testing.T, dir string, want bool) {
	t.Helper()
	for range 200 {
		if testutil.IsMountPoint(t, dir) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: mounted is not %v after 10s", dir, want)
}

func TestFuseMountForeground(t *testing.T) {
	requireFUSE(t)
	f := newCLIFixture(t)
	bin := testutil.GocfsBinary(t)
	dir := mountPoint(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "mount", "--fuse", f.img, dir, "--basedir", f.store, "--verity=require")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, dir, true)
	if mi := testutil.MountAt(t, dir); mi.FSType != "fuse.composefs" {
		t.Errorf("mounted as %s, want fuse.composefs", mi.FSType)
	}
	testutil.CompareTrees(t, f.src, dir, testutil.CompareOptions{})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("gocfs mount --fuse, stopped by SIGTERM: %v\n%s", err, out.Bytes())
	}
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("still mounted after SIGTERM")
	}
	t.Logf("output:\n%s", out.Bytes())
}

func TestFuseMountBackground(t *testing.T) {
	requireFUSE(t)
	f := newCLIFixture(t)
	bin := testutil.GocfsBinary(t)
	dir := mountPoint(t)
	out, err := exec.Command(bin, "mount", "--fuse", "--background", f.img, dir, "--basedir", f.store).CombinedOutput()
	if err != nil {
		t.Fatalf("gocfs mount --fuse --background: %v\n%s", err, out)
	}
	t.Logf("output: %s", out)
	m := regexp.MustCompile(`pid (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no server pid in %q", out)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	if !testutil.IsMountPoint(t, dir) {
		t.Fatalf("not mounted once gocfs mount --background returned")
	}
	testutil.CompareTrees(t, f.src, dir, testutil.CompareOptions{})
	if out, err := exec.Command(bin, "umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("gocfs umount: %v\n%s", err, out)
	}
	// Gone, or a zombie its new parent has yet to reap.
	for i := 0; unix.Kill(pid, 0) == nil && !isZombie(pid); i++ {
		if i == 200 {
			t.Fatalf("server %d still running 10s after the unmount", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A refused mount is reported by the command itself.
	out, err = exec.Command(bin, "mount", "--fuse", "--background", f.img, dir, "--basedir", f.store, "--digest", strings.Repeat("0", 64)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "digest mismatch") {
		t.Errorf("background mount with a wrong digest: %v: %s", err, out)
	}
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("mounted despite the wrong digest")
	}
}

// TestFuseMountNotRoot runs "gocfs mount" as user nobody, who gets a FUSE
// mount by itself (through fusermount3), and "gocfs umount", which
// unmounts it through fusermount3 -u; in a mount namespace of their own
// where /dev/fuse is open to all users (as distributions make it).
func TestFuseMountNotRoot(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	for _, tool := range []string{"unshare", "setpriv", "fusermount3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	base, err := os.MkdirTemp("", "gocfs-fuse-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(base, 0o755))
	src, img, store, mnt := filepath.Join(base, "src"), filepath.Join(base, "img.cfs"), filepath.Join(base, "objects"), filepath.Join(base, "mnt")
	must(os.Mkdir(store, 0o755))
	must(os.Mkdir(mnt, 0o755))
	must(os.Chown(mnt, 65534, 65534))
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{})
	if code, out := runGocfs(t, "mkcomposefs", "--digest-store="+store, src, img); code != 0 {
		t.Fatalf("mkcomposefs: %d %s", code, out)
	}
	bin := filepath.Join(base, "gocfs")
	b, err := os.ReadFile(testutil.GocfsBinary(t))
	must(err)
	must(os.WriteFile(bin, b, 0o755))
	fuseDev := ""
	var st unix.Stat_t
	must(unix.Stat("/dev/fuse", &st))
	if st.Mode&0o006 != 0o006 {
		fuseDev = filepath.Join(base, "fuse")
		must(unix.Mknod(fuseDev, unix.S_IFCHR|0o666, int(st.Rdev)))
		must(os.Chmod(fuseDev, 0o666))
	}
	script := `set -e
if [ -n "$FUSEDEV" ]; then mount --bind "$FUSEDEV" /dev/fuse; fi
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c '
set -e
"$GOCFS" mount "$IMG" "$MNT" --basedir "$STORE" --background
grep " $MNT " /proc/self/mountinfo
cmp "$MNT/size-0065536" "$SRC/size-0065536"
"$GOCFS" umount "$MNT"
if grep " $MNT " /proc/self/mountinfo; then echo still mounted; exit 1; fi
echo done
'`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "FUSEDEV="+fuseDev, "GOCFS="+bin, "IMG="+img, "MNT="+mnt, "STORE="+store, "SRC="+src)
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil || !strings.Contains(string(out), "not root: serving the image with FUSE") || !strings.HasSuffix(string(out), "done\n") {
		t.Errorf("unprivileged gocfs mount and umount: %v", err)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// PID (COMM) STATE ...
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}
