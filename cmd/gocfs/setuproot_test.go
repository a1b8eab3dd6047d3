package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/internal/testutil"
)

// The acceptance test of "gocfs setup-root --target" on a machine whose
// file systems have no fs-verity: an insecure karg mounts the image (the
// tree is the source's, /etc and /var writable), said loudly; a secure one
// is refused with a message that says why and how to go on, and leaves
// nothing mounted. The composefs-setup-root personality behaves the same.
func TestSetupRootCommand(t *testing.T) {
	testutil.RequireRoot(t)
	c := newCLI(t)
	dir := t.TempDir()
	src, sysroot, target := filepath.Join(dir, "src"), filepath.Join(dir, "sysroot"), filepath.Join(dir, "target")
	for name, content := range map[string]string{
		"usr/bin/image-only": "only the image has this\n",
		"usr/lib/data":       strings.Repeat("data ", 1000),
		"etc/os-release":     "ID=gocfs\n",
	} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(src, "var"), filepath.Join(src, "sysroot"), target} {
		os.MkdirAll(d, 0o755)
	}
	r := filepath.Join(sysroot, "composefs")
	c.ok("--repo", r, "init", "--hash", "sha256")
	id := strings.TrimPrefix(strings.TrimSpace(c.ok("--repo", r, "create-image", src)), "sha256:")
	os.MkdirAll(filepath.Join(sysroot, "state/deploy", id), 0o755)
	noConfig := filepath.Join(dir, "none.toml")
	secure := "composefs.digest=v1-sha256-12:" + id
	if !strings.Contains(c.ok("--repo", r, "compute-karg", id), secure) {
		t.Fatalf("compute-karg does not print %s", secure)
	}

	before := testutil.MountsMentioning(t, dir)
	_, errs, code := c.run(nil, "setup-root", "--sysroot", sysroot, "--target", target, "--config", noConfig, "--cmdline", "quiet "+secure)
	if code == 0 || !strings.Contains(errs, "opening the repository") || !strings.Contains(errs, "no fs-verity") || !strings.Contains(errs, "composefs.digest=?v1-sha256-12:") {
		t.Errorf("a secure karg on a repository without fs-verity: exit %d, %q", code, errs)
	}
	if n := testutil.MountsMentioning(t, dir); n != before {
		t.Fatalf("%d mounts left after a refusal", n-before)
	}

	link := filepath.Join(dir, "composefs-setup-root")
	if err := os.Symlink(c.bin, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "--sysroot", sysroot, "--target", target, "--config", noConfig, "--cmdline", "quiet composefs=?"+id)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, target) {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount: %v", err)
				return
			}
		}
	})
	if err != nil || !strings.Contains(string(out), "INSECURE") {
		t.Fatalf("composefs-setup-root with an insecure karg: %v, %s", err, out)
	}
	testutil.CompareTrees(t, filepath.Join(src, "usr"), filepath.Join(target, "usr"), testutil.CompareOptions{})
	for _, p := range []string{"etc/new", "var/new"} {
		if err := os.WriteFile(filepath.Join(target, p), []byte("x"), 0o644); err != nil {
			t.Errorf("writing %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(sysroot, "state/deploy", id, "etc/upper/new")); err != nil {
		t.Errorf("/etc write not in the state directory: %v", err)
	}
}
