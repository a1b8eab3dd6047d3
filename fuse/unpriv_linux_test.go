//go:build linux

package fuse

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"golang.org/x/sys/unix"
)

// helperEnv, when set in the environment of the test binary, makes it run
// helperMain instead of the tests: a FUSE mount made by an unprivileged
// user, configured by the JSON in the variable.
const helperEnv = "GOCFS_FUSE_TEST_HELPER"

type helperConfig struct {
	Src, Img, Store, Mnt string
	// FuseDev, when set, is a /dev/fuse node open to every user, to bind
	// over /dev/fuse in a mount namespace of the helper's own, as root,
	// before running the helper again as UID.
	FuseDev string
	UID     int
}

// TestUnprivileged mounts as user nobody, through fusermount3, and checks
// that the tree nobody sees through the mount is the one nobody sees in
// the source (the same permission checks apply to both).
func TestUnprivileged(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	fm, err := exec.LookPath("fusermount3")
	if err != nil {
		t.Skip("no fusermount3 (Debian package fuse3): unprivileged FUSE mounts need it")
	}
	var st unix.Stat_t
	must(t, unix.Stat(fm, &st))
	if st.Uid != 0 || st.Mode&unix.S_ISUID == 0 {
		t.Skipf("%s is not setuid root: unprivileged users cannot mount with it", fm)
	}
	const nobody = 65534
	f := sample(t, testutil.SampleOptions{Hardlinks: true})
	base := tempDir(t)
	mnt := filepath.Join(base, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	must(t, os.Chown(mnt, nobody, nobody))
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, mnt) {
			if err := Unmount(mnt, true); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	// The test binary, where nobody can run it.
	self, err := os.Executable()
	must(t, err)
	bin := filepath.Join(base, "fuse.test")
	copyFile(t, self, bin)

	hc := helperConfig{Src: f.src, Img: f.img, Store: f.store, Mnt: mnt, UID: nobody}
	attr := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	must(t, unix.Stat("/dev/fuse", &st))
	if st.Mode&0o006 != 0o006 {
		// fusermount3 opens /dev/fuse as the user: here only root may.
		// Distributions make it 0666; do so in a mount namespace of
		// the helper's own, leaving the host as it is.
		t.Logf("/dev/fuse is mode %#o here, not 0666 as distributions make it: using a 0666 node in a private mount namespace", st.Mode&0o777)
		hc.FuseDev = filepath.Join(base, "fuse-dev")
		must(t, unix.Mknod(hc.FuseDev, unix.S_IFCHR|0o666, int(st.Rdev)))
		must(t, os.Chmod(hc.FuseDev, 0o666))
		attr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}
	cfg, _ := json.Marshal(hc)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(cfg), "PATH=/usr/local/bin:/usr/bin:/bin")
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("unprivileged mount and check failed: %v", err)
	}
	if testutil.IsMountPoint(t, mnt) {
		t.Errorf("still mounted after the unprivileged server unmounted")
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

// helperMain mounts, compares, unmounts, as the user it runs as.
func helperMain() int {
	var cfg helperConfig
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &cfg); err != nil {
		fmt.Println("bad helper config:", err)
		return 2
	}
	if cfg.FuseDev != "" && os.Geteuid() == 0 {
		return helperNamespace(cfg)
	}
	fmt.Printf("uid %d gid %d\n", os.Getuid(), os.Getgid())
	srv, err := Mount(cfg.Img, cfg.Mnt, mount.Options{Basedirs: []string{cfg.Store}, Notice: func(m string) { fmt.Println("server:", m) }})
	if err != nil {
		fmt.Println("mount:", err)
		return 1
	}
	fmt.Println("passthrough:", srv.Passthrough())
	want, err1 := snapshot(cfg.Src)
	got, err2 := snapshot(cfg.Mnt)
	code := 0
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("snapshot:", err)
		code = 1
	}
	diffs := 0
	for p, w := range want {
		if g := got[p]; g != w {
			diffs++
			fmt.Printf("%s: got %q, want %q\n", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs++
			fmt.Printf("%s: unexpected\n", p)
		}
	}
	fmt.Printf("%d entries compared, %d differences; stats %+v\n", len(want), diffs, srv.Stats())
	if diffs > 0 || len(want) < 100 {
		code = 1
	}
	if err := srv.Unmount(); err != nil {
		fmt.Println("unmount:", err)
		return 1
	}
	return code
}

// snapshot describes every entry under dir as the calling user sees it:
// type, permissions, owner, size, mtime, link count, symlink target, xattrs
// and content, or the error reading them gives.
func snapshot(dir string) (map[string]string, error) {
	res := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				res[rel] += " unreadable"
				return nil
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("%o %d:%d %d.%09d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			s += fmt.Sprintf(" -> %q %v", l, err)
		case unix.S_IFREG:
			s += fmt.Sprintf(" size %d links %d", st.Size, st.Nlink)
			if b, err := os.ReadFile(p); err != nil {
				s += " " + errors.Unwrap(err).Error()
			} else {
				s += fmt.Sprintf(" %x", sha256.Sum256(b))
			}
		default:
			s += fmt.Sprintf(" rdev %d", st.Rdev)
		}
		buf := make([]byte, 1<<16)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return fmt.Errorf("%s: listxattr: %w", p, err)
		}
		names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" || name == "security.selinux" {
				continue
			}
			v := make([]byte, 1<<16)
			m, err := unix.Lgetxattr(p, name, v)
			s += fmt.Sprintf(" %s=%x %v", name, sha256.Sum256(v[:max(m, 0)]), err)
		}
		res[rel] = s
		return nil
	})
	return res, err
}

// helperNamespace, as root in a mount namespace of its own, puts an
// open-to-all /dev/fuse in place and runs the helper again as cfg.UID.
func helperNamespace(cfg helperConfig) int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Println("making mounts private:", err)
		return 2
	}
	if err := unix.Mount(cfg.FuseDev, "/dev/fuse", "", unix.MS_BIND, ""); err != nil {
		fmt.Println("binding /dev/fuse:", err)
		return 2
	}
	self, _ := os.Executable()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.UID)}}
	err := cmd.Run()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), " "+cfg.Mnt+" ") {
		fmt.Println("still mounted after the server unmounted")
		return 1
	}
	if err != nil {
		fmt.Println("helper:", err)
		return 1
	}
	return 0
}
