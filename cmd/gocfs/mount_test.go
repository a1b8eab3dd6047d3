package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
)

func TestParseHelperArgs(t *testing.T) {
	tests := []struct {
		args []string
		want helperArgs
		err  string
	}{
		{args: []string{"img", "mnt"}, want: helperArgs{image: "img", target: "mnt"}},
		{args: []string{"-o", "basedir=/s", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "basedir=/s", haveOptions: true}},
		{args: []string{"img", "mnt", "-o", "rw,basedir=/s"}, want: helperArgs{image: "img", target: "mnt", options: "rw,basedir=/s", haveOptions: true}},
		{args: []string{"img", "-obasedir=/s", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "basedir=/s", haveOptions: true}},
		{args: []string{"img", "mnt", "-s", "-n", "-o", "rw"}, want: helperArgs{image: "img", target: "mnt", options: "rw", haveOptions: true, sloppy: true}},
		{args: []string{"-nvsf", "-o", "x", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "x", haveOptions: true, sloppy: true, verbose: true, fake: true}},
		{args: []string{"-nvo", "x", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "x", haveOptions: true, verbose: true}},
		{args: []string{"-t", "composefs", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt"}},
		{args: []string{"-tcomposefs", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt"}},
		{args: []string{"-o", "a", "-o", "b", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "b", haveOptions: true}},
		{args: []string{"-o", "", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", options: "", haveOptions: true}},
		{args: []string{"-N", "123", "img", "mnt"}, want: helperArgs{image: "img", target: "mnt", namespace: "123"}},
		{args: []string{"--", "-img", "mnt"}, want: helperArgs{image: "-img", target: "mnt"}},
		{args: []string{"-", "mnt"}, want: helperArgs{image: "-", target: "mnt"}},
		{args: []string{"-h"}, want: helperArgs{help: true}},
		{args: []string{"img", "-h"}, want: helperArgs{help: true}},

		{args: []string{"-t", "ext4", "img", "mnt"}, err: "unsupported fs type 'ext4'"},
		{args: []string{"-t", "composefs.x", "img", "mnt"}, err: "unsupported fs type"},
		{args: []string{"img", "mnt", "-o"}, err: "option requires an argument -- 'o'"},
		{args: []string{"-x", "img", "mnt"}, err: "invalid option -- 'x'"},
		{args: []string{"--basedir=/s", "img", "mnt"}, err: "invalid option -- '-'"},
		{args: nil, err: "No source path specified"},
		{args: []string{"img"}, err: "No mount path specified"},
		{args: []string{"img", "mnt", "extra"}, err: "too many arguments"},
	}
	for _, tt := range tests {
		got, err := parseHelperArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseHelperArgs(%q) = %+v, %v; want error %q", tt.args, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseHelperArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

// cliFixture is a sample tree and its image, for the command tests.
type cliFixture struct{ src, img, store string }

func newCLIFixture(t *testing.T) cliFixture {
	t.Helper()
	testutil.RequireRoot(t)
	if runtime.GOOS != "linux" {
		t.Skip("composefs mounts need Linux")
	}
	dir := t.TempDir()
	f := cliFixture{src: filepath.Join(dir, "src"), img: filepath.Join(dir, "img.cfs"), store: filepath.Join(dir, "objects")}
	if err := os.Mkdir(f.store, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.MakeSampleTree(t, f.src, testutil.SampleOptions{})
	if testutil.MkcomposefsName() == "gocfs" {
		// This package's own mkcomposefs, in-process.
		if code, out := runGocfs(t, "mkcomposefs", "--digest-store="+f.store, f.src, f.img); code != 0 {
			t.Fatalf("gocfs mkcomposefs: exit %d: %s", code, out)
		}
	} else {
		testutil.Mkcomposefs(t, f.src, f.img, f.store)
	}
	return f
}

// runGocfs runs the gocfs command line args in-process and returns its
// exit code and what it wrote.
func runGocfs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := rootCommand()
	cmd.SetArgs(args)
	return runCaptured(t, cmd.SetOut, cmd.SetErr, func() int { return run("gocfs", cmd) })
}

// runCaptured runs fn with the command's output and the process's standard
// error (where run reports errors) going to one buffer.
func runCaptured(t *testing.T, setOut, setErr func(io.Writer), fn func() int) (int, string) {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	var out bytes.Buffer
	setOut(&out)
	setErr(&out)
	saved := os.Stderr
	os.Stderr = tmp
	code := fn()
	os.Stderr = saved
	b, _ := os.ReadFile(tmp.Name())
	return code, out.String() + string(b)
}

// runHelper runs mount.composefs with args in-process, as when called
// through its link.
func runHelper(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := newMountComposefsCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	return runCaptured(t, cmd.SetOut, cmd.SetErr, func() int { return run("mount.composefs", cmd) })
}

func mountPoint(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, dir) {
			if err := mount.UnmountLazy(dir); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	return dir
}

func TestMountComposefsHelper(t *testing.T) {
	f := newCLIFixture(t)
	copts := testutil.CompareOptions{}

	t.Run("as mount(8) calls it", func(t *testing.T) {
		dir := mountPoint(t)
		code, out := runHelper(t, f.img, dir, "-o", "rw,nodev,basedir="+mount.EscapeOption(f.store))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		testutil.CompareTrees(t, f.src, dir, copts)
		if mi := testutil.MountAt(t, dir); mi == nil || !strings.Contains(mi.Options, "nodev") {
			t.Errorf("mount %+v lacks nodev", mi)
		}
		if code, out := runGocfs(t, "umount", dir); code != 0 {
			t.Fatalf("gocfs umount: exit %d: %s", code, out)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("still mounted after gocfs umount")
		}
	})

	t.Run("upstream order with -t", func(t *testing.T) {
		dir := mountPoint(t)
		code, out := runHelper(t, "-t", "composefs", "-o", "basedir="+f.store+",tryverity", f.img, dir)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if !strings.Contains(out, "tryverity") {
			t.Errorf("no notice about tryverity without fs-verity: %q", out)
		}
		testutil.CompareTrees(t, f.src, dir, copts)
	})

	t.Run("digest", func(t *testing.T) {
		d, err := fsverity.DigestFile(f.img, fsverity.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		dir := mountPoint(t)
		bad := strings.Repeat("0", 64)
		code, out := runHelper(t, f.img, dir, "-o", "basedir="+f.store+",digest="+bad)
		if code != 1 || !strings.Contains(out, bad) || !strings.Contains(out, fsverity.Hex(d)) {
			t.Errorf("wrong digest: exit %d: %q; want exit 1 naming both digests", code, out)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("mounted despite a wrong digest")
		}
		code, out = runHelper(t, f.img, dir, "-o", "basedir="+f.store+",digest="+fsverity.Hex(d))
		if code != 0 {
			t.Errorf("right digest: exit %d: %q", code, out)
		}
	})

	t.Run("sloppy", func(t *testing.T) {
		dir := mountPoint(t)
		code, out := runHelper(t, f.img, dir, "-o", "basedir="+f.store+",x-foo")
		if code != 1 || !strings.Contains(out, `unsupported option "x-foo"`) {
			t.Errorf("unknown option: exit %d: %q", code, out)
		}
		code, out = runHelper(t, f.img, dir, "-s", "-o", "basedir="+f.store+",x-foo")
		if code != 0 || !strings.Contains(out, `ignoring unsupported option "x-foo"`) {
			t.Errorf("unknown option with -s: exit %d: %q", code, out)
		}
	})

	t.Run("fake", func(t *testing.T) {
		dir := mountPoint(t)
		code, out := runHelper(t, "-fv", f.img, dir, "-o", "basedir="+f.store)
		if code != 0 || testutil.IsMountPoint(t, dir) {
			t.Errorf("-f: exit %d: %q, mounted: %v", code, out, testutil.IsMountPoint(t, dir))
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		dir := mountPoint(t)
		for _, args := range [][]string{
			{f.img, dir},
			{f.img, dir, "-o", "ro"},
			{f.img},
			{"-t", "erofs", f.img, dir},
		} {
			code, out := runHelper(t, args...)
			if code != 1 || !strings.Contains(out, "usage: mount.composefs") {
				t.Errorf("%q: exit %d: %q; want exit 1 and the usage", args, code, out)
			}
		}
		code, out := runHelper(t, "-h")
		if code != 0 || !strings.Contains(out, "basedir=PATH") {
			t.Errorf("-h: exit %d: %q", code, out)
		}
		code, out = runHelper(t, f.img, dir, "-o", "basedir="+filepath.Join(f.store, "nope"))
		if code != 1 || !strings.Contains(out, "does not exist") {
			t.Errorf("missing basedir: exit %d: %q", code, out)
		}
	})
}

func TestGocfsMount(t *testing.T) {
	f := newCLIFixture(t)
	d, err := fsverity.DigestFile(f.img, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	dir := mountPoint(t)
	code, out := runGocfs(t, "mount", f.img, dir, "--basedir", f.store, "--digest", fsverity.Hex(d))
	if code != 0 {
		t.Fatalf("gocfs mount: exit %d: %s", code, out)
	}
	// --digest alone does not imply verity: the content reads.
	testutil.CompareTrees(t, f.src, dir, testutil.CompareOptions{})
	if code, out := runGocfs(t, "umount", dir); code != 0 {
		t.Fatalf("gocfs umount: exit %d: %s", code, out)
	}

	base := t.TempDir()
	upper, work := filepath.Join(base, "u"), filepath.Join(base, "w")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	code, out = runGocfs(t, "mount", f.img, dir, "-o", "basedir="+f.store, "--upperdir", upper, "--workdir", work)
	if code != 0 {
		t.Fatalf("gocfs mount --upperdir: exit %d: %s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644); err != nil {
		t.Errorf("writing to a mount with --upperdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("the new file is not in upperdir: %v", err)
	}
	if code, out := runGocfs(t, "umount", "--lazy", dir); code != 0 {
		t.Fatalf("gocfs umount --lazy: exit %d: %s", code, out)
	}

	for _, args := range [][]string{
		{"mount", f.img, dir},
		{"mount", f.img, dir, "--basedir", f.store, "--upperdir", upper},
		{"mount", f.img, dir, "--basedir", f.store, "--verity", "--tryverity"},
		{"mount", f.img, dir, "--basedir", f.store, "--digest", "xyz"},
		{"mount", f.img, "--basedir", f.store},
		{"umount", dir},
	} {
		if code, out := runGocfs(t, args...); code == 0 {
			t.Errorf("%q succeeded: %s", args, out)
		} else {
			t.Logf("%q: %s", args, strings.TrimSpace(out))
		}
		if testutil.IsMountPoint(t, dir) {
			t.Fatalf("%q mounted", args)
		}
	}
}

// TestMountHelperWithMount8 runs "mount -t composefs" with gocfs as
// /sbin/mount.composefs, in a mount namespace of its own where a directory
// holding the link is bound over the helper directory.
func TestMountHelperWithMount8(t *testing.T) {
	f := newCLIFixture(t)
	for _, tool := range []string{"unshare", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	sbin, err := filepath.EvalSymlinks("/sbin")
	if err != nil {
		t.Skipf("no /sbin: %v", err)
	}
	bin := testutil.GocfsBinary(t)
	helpers := filepath.Join(t.TempDir(), "sbin")
	if err := os.Mkdir(helpers, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(helpers, "mount.composefs")); err != nil {
		t.Fatal(err)
	}
	dir := mountPoint(t)
	script := `set -e
mount --bind "$HELPERS" "$SBIN"
mount -t composefs "$IMG" -o ro,nosuid,basedir="$STORE" "$MNT"
cat "$MNT/size-0100000" | cksum
findmnt -n -o FSTYPE,SOURCE "$MNT"
umount "$MNT"
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "HELPERS="+helpers, "SBIN="+sbin, "IMG="+f.img, "STORE="+f.store, "MNT="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mount -t composefs: %v\n%s", err, out)
	}
	want, err := exec.Command("sh", "-c", `cksum < "$0"`, filepath.Join(f.src, "size-0100000")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), strings.TrimSpace(string(want))) || !strings.Contains(string(out), "overlay composefs") {
		t.Errorf("mount -t composefs: output %q, want the file's checksum %q and an overlay from composefs", out, want)
	}
}
