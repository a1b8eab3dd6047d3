package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/repo"
)

// fixture is a sysroot with a repository holding one image of a small
// root file system, and the image's state directory.
type fixture struct {
	dir, sysroot, src, hex string
	secure                 bool
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// newFixture makes the fixture; the image has every file of files (names
// ending in "/" are directories).
func newFixture(t *testing.T, files map[string]string) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	f := &fixture{dir: t.TempDir()}
	f.sysroot, f.src = filepath.Join(f.dir, "sysroot"), filepath.Join(f.dir, "src")
	writeFiles(t, f.src, files)
	r, err := repo.Init(filepath.Join(f.sysroot, RepoDir), repo.InitOptions{Algorithm: fsverity.SHA256}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.CreateImage(context.Background(), f.src, "", repo.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.hex, f.secure = res.Image, r.Secure()
	if err := os.MkdirAll(filepath.Join(f.sysroot, StateDir, f.hex), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

var rootFiles = map[string]string{
	"usr/bin/image-only": "only the image has this\n",
	"usr/lib/big":        strings.Repeat("composefs object\n", 1000),
	"etc/app.conf":       "setting=1\n",
	"var/":               "",
	"sysroot/":           "",
}

// mountsLeft fails the test when a mount mentioning the fixture's
// directory is left, or the work directory is.
func (f *fixture) checkClean(t *testing.T, parent string) {
	t.Helper()
	if n := testutil.MountsMentioning(t, f.dir); n != 0 {
		t.Errorf("%d mounts left behind under %s", n, f.dir)
	}
	if m, _ := filepath.Glob(filepath.Join(parent, ".gocfs-setup-root-*")); len(m) != 0 {
		t.Errorf("work directory left behind: %v", m)
	}
}

func unmountAll(t *testing.T, dir string) {
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, dir) {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", dir, err)
				return
			}
		}
	})
}

// setup-root --target on a file system without fs-verity and an insecure
// karg: the tree is the image's, /etc and /var writes land in the state
// directory, the image itself is read-only, and overlayfs has no
// verity=require.
func TestSetupRootTargetInsecure(t *testing.T) {
	f := newFixture(t, rootFiles)
	target := filepath.Join(f.dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	unmountAll(t, target)
	var notices []string
	res, err := SetupRoot(Options{Sysroot: f.sysroot, Target: target, Config: &Config{},
		Cmdline: "root=/dev/vda quiet composefs=?" + f.hex, Notice: func(m string) { notices = append(notices, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verity || !res.Karg.Insecure || res.Target != target {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(strings.Join(notices, "\n"), "INSECURE") {
		t.Errorf("an insecure boot was not reported loudly: %q", notices)
	}
	m := testutil.MountAt(t, target)
	if m == nil || strings.Contains(m.SuperOpts, "verity") {
		t.Fatalf("mount at target: %+v", m)
	}
	testutil.CompareTrees(t, filepath.Join(f.src, "usr"), filepath.Join(target, "usr"), testutil.CompareOptions{})
	state := filepath.Join(f.sysroot, StateDir, f.hex)
	writeFiles(t, target, map[string]string{"etc/new.conf": "e", "var/log/x": "v"})
	for _, p := range []string{"etc/upper/new.conf", "var/log/x"} {
		if _, err := os.Stat(filepath.Join(state, p)); err != nil {
			t.Errorf("write did not land in the state directory: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(target, "etc/app.conf")); err != nil || string(b) != "setting=1\n" {
		t.Errorf("/etc/app.conf through the overlay: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "usr/new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into the image: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(target, "sysroot", RepoDir, "meta.json")); err != nil {
		t.Errorf("the sysroot is not at /sysroot in the new root: %v", err)
	}
}

// Without the insecure mark, a repository without fs-verity is refused
// before anything is mounted, with a message that says how to go on.
func TestSetupRootRefusesWithoutVerity(t *testing.T) {
	f := newFixture(t, rootFiles)
	if f.secure {
		t.Skip("the test directory's file system has fs-verity")
	}
	target := filepath.Join(f.dir, "target")
	os.Mkdir(target, 0o755)
	_, err := SetupRoot(Options{Sysroot: f.sysroot, Target: target, Config: &Config{}, Cmdline: "composefs=" + f.hex})
	var se *StepError
	if !errors.Is(err, ErrInsecureRepo) || !errors.As(err, &se) || se.Step != StepRepository {
		t.Fatalf("err = %v, want ErrInsecureRepo at %q", err, StepRepository)
	}
	if !strings.Contains(err.Error(), "composefs=?") {
		t.Errorf("the message does not say how to boot anyway: %v", err)
	}
	f.checkClean(t, f.dir)
}

// Each failure names its step and leaves nothing mounted, however far
// SetupRoot got.
func TestSetupRootFailuresUndo(t *testing.T) {
	noVar := map[string]string{"usr/bin/x": "x", "etc/": "", "sysroot/": ""}
	other := strings.Repeat("0", 64)
	tests := []struct {
		name    string
		files   map[string]string
		cmdline func(f *fixture) string
		cfg     Config
		prep    func(t *testing.T, f *fixture)
		step    Step
		is      error
	}{
		{name: "no karg", files: rootFiles, cmdline: func(*fixture) string { return "quiet" }, step: StepCmdline, is: ErrNoKarg},
		{name: "bad karg", files: rootFiles, cmdline: func(*fixture) string { return "composefs=?xyz" }, step: StepCmdline, is: ErrKarg},
		{name: "wrong digest", files: rootFiles, cmdline: func(*fixture) string { return "composefs=?" + other }, step: StepImage, is: ErrNoImage},
		{name: "SHA-512 karg for a SHA-256 repository", files: rootFiles, cmdline: func(*fixture) string { return "composefs=?" + other + other }, step: StepImage, is: ErrNoImage},
		{name: "no state directory", files: rootFiles, cmdline: insecure,
			prep: func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.sysroot, StateDir, f.hex)) }, step: StepEtc, is: os.ErrNotExist},
		{name: "image without /var", files: noVar, cmdline: insecure, step: StepVar, is: os.ErrNotExist},
		{name: "state deploy is a symlink", files: rootFiles, cmdline: insecure,
			prep: func(t *testing.T, f *fixture) {
				deploy := filepath.Join(f.sysroot, StateDir)
				os.Rename(deploy, deploy+".real")
				os.Symlink("deploy.real", deploy)
			}, step: StepEtc},
		{name: "state /etc is a symlink", files: rootFiles, cmdline: insecure,
			prep: func(t *testing.T, f *fixture) {
				os.Symlink("/tmp", filepath.Join(f.sysroot, StateDir, f.hex, "etc"))
			}, step: StepEtc},
		{name: "root transient then no /var", files: noVar, cmdline: insecure, cfg: Config{Root: RootConfig{Transient: true}, Etc: MountConfig{Mount: ModeNone}}, step: StepVar},
		{name: "root transient and etc overlay", files: rootFiles, cmdline: insecure, cfg: Config{Root: RootConfig{Transient: true}}, step: StepConfig, is: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.files)
			if tt.prep != nil {
				tt.prep(t, f)
			}
			target := filepath.Join(f.dir, "target")
			os.Mkdir(target, 0o755)
			unmountAll(t, target)
			_, err := SetupRoot(Options{Sysroot: f.sysroot, Target: target, Config: &tt.cfg, Cmdline: tt.cmdline(f)})
			var se *StepError
			if !errors.As(err, &se) || se.Step != tt.step || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("err = %v, want a failure at %q wrapping %v", err, tt.step, tt.is)
			}
			if !strings.Contains(err.Error(), string(tt.step)) {
				t.Errorf("the message does not name the step: %v", err)
			}
			f.checkClean(t, f.dir)
		})
	}
}

func insecure(f *fixture) string { return "composefs=?" + f.hex }

// A karg's digest names an image under images/, never a reference: a
// reference named like the digest of an image that is not there must not
// boot the image it points at.
func TestSetupRootIgnoresRefs(t *testing.T) {
	f := newFixture(t, rootFiles)
	other := strings.Repeat("1", 64)
	r, err := repo.Open(filepath.Join(f.sysroot, RepoDir), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(other, f.hex); err != nil {
		t.Fatal(err)
	}
	r.Close()
	target := filepath.Join(f.dir, "target")
	os.Mkdir(target, 0o755)
	unmountAll(t, target)
	_, err = SetupRoot(Options{Sysroot: f.sysroot, Target: target, Config: &Config{}, Cmdline: "composefs=?" + other})
	if !errors.Is(err, ErrNoImage) {
		t.Fatalf("err = %v, want ErrNoImage", err)
	}
	f.checkClean(t, f.dir)
}

// Without --target the new root replaces the sysroot (a mount point), the
// old sysroot stays visible at /sysroot inside it, and with [root]
// transient every path is writable and backed by memory. Of several
// kargs, the first whose image is there is used.
func TestSetupRootReplacesSysroot(t *testing.T) {
	f := newFixture(t, rootFiles)
	if err := unix.Mount(f.sysroot, f.sysroot, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	unmountAll(t, f.sysroot)
	cmdline := "composefs=?" + strings.Repeat("2", 64) + " composefs.digest=?v1-sha256-12:" + f.hex
	cfg := &Config{Root: RootConfig{Transient: true}, Etc: MountConfig{Mount: ModeNone}}
	res, err := SetupRoot(Options{Sysroot: f.sysroot, Config: cfg, Cmdline: cmdline})
	if err != nil {
		t.Fatal(err)
	}
	if res.Karg.Version != 1 || res.Target != f.sysroot {
		t.Errorf("result %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(f.sysroot, "usr/bin/image-only")); err != nil || string(b) != rootFiles["usr/bin/image-only"] {
		t.Fatalf("the sysroot is not the image: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.sysroot, "sysroot", RepoDir, "meta.json")); err != nil {
		t.Errorf("the old sysroot is not at /sysroot: %v", err)
	}
	writeFiles(t, f.sysroot, map[string]string{"usr/new": "n", "var/new": "v"})
	if _, err := os.Stat(filepath.Join(f.src, "usr/new")); err == nil {
		t.Error("a write to the transient root reached the source")
	}
	if m, _ := filepath.Glob(filepath.Join(f.dir, ".gocfs-setup-root-*")); len(m) != 0 {
		t.Errorf("work directory left behind: %v", m)
	}
}
