package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/gocfs/gocfs/boot"
	"github.com/gocfs/gocfs/repo"
)

// bootRoot is a root file system with content in /boot and /sysroot,
// which the boot transformation empties.
func bootRoot(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "root")
	for name, content := range map[string]string{
		"usr/bin/init":        "#!/bin/sh\n",
		"boot/vmlinuz":        "kernel",
		"sysroot/ostree/repo": "x",
		"etc/hostname":        "gocfs\n",
	} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// compute-karg PATH prints the karg of the image create-image --bootable
// stores (composefs-rs's compute-karg: the boot transformation always
// applied, composefs.digest=v1-… for EROFS formats 0 and 1), compute-karg
// IMAGE the karg of a stored image, and --insecure marks it.
func TestComputeKarg(t *testing.T) {
	c := newCLI(t)
	src := bootRoot(t)
	dir := filepath.Join(t.TempDir(), "repo")
	c.ok("--repo", dir, "init", "--hash", "sha256")
	plain := strings.TrimSpace(c.ok("--repo", dir, "compute-id", src))
	created := strings.TrimSpace(c.ok("--repo", dir, "create-image", "--bootable", src, "os"))
	id := strings.TrimPrefix(created, "sha256:")
	if id == plain || len(id) != 64 {
		t.Fatalf("create-image --bootable gave %s, the plain image is %s: want another digest", created, plain)
	}
	dump := c.ok("--repo", dir, "create-dumpfile", "--bootable", src)
	if strings.Contains(dump, "/boot/vmlinuz") || strings.Contains(dump, "/sysroot/ostree") || !strings.Contains(dump, "/usr/bin/init") {
		t.Errorf("the bootable tree keeps /boot or /sysroot content, or lost /usr:\n%s", dump)
	}
	want := "composefs.digest=v1-sha256-12:" + id
	for _, args := range [][]string{
		{"--repo", dir, "compute-karg", src},
		{"--repo", dir, "--erofs-version", "1", "compute-karg", src},
		{"--repo", dir, "compute-karg", id},
		{"--repo", dir, "compute-karg", "refs/os"},
	} {
		if got := strings.TrimSpace(c.ok(args...)); got != want {
			t.Errorf("gocfs %q = %s, want %s", args, got, want)
		}
	}
	if got := strings.TrimSpace(c.ok("--repo", dir, "--insecure", "compute-karg", id)); got != "composefs.digest=?v1-sha256-12:"+id {
		t.Errorf("--insecure compute-karg = %s", got)
	}
	c.fails("not found", "--repo", dir, "compute-karg", strings.Repeat("0", 64))
	os.RemoveAll(filepath.Join(src, "sysroot"))
	c.fails("/sysroot", "--repo", dir, "compute-karg", src)
	c.fails("--bootable", "--repo", dir, "create-image", "--bootable", src)
}

// oci prepare-boot stores the bootable variant of an OCI image, makes its
// state directory beside the repository, installs its kernel as a Type 1
// entry (composefs-boot's into_type1 and write_t1_simple) and prints its
// karg, which compute-karg --oci prints too; an image with an SELinux
// policy is refused (gocfs does not relabel).
func TestOCIPrepareBoot(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, ociTestLayer(t, map[string]string{
		"usr/bin/init": "#!/bin/sh\n", "boot/vmlinuz": "kernel", "sysroot/x": "x",
		"usr/lib/modules/6.1.0-test/vmlinuz":       strings.Repeat("K", 5000),
		"usr/lib/modules/6.1.0-test/initramfs.img": "initramfs",
	}))
	if err != nil {
		t.Fatal(err)
	}
	layoutDir := ociTestLayout(t, img, "v1")
	sysroot, bootdir := t.TempDir(), t.TempDir()
	rdir := filepath.Join(sysroot, "composefs")
	if _, err := repo.Init(rdir, repo.InitOptions{Insecure: true}, repo.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir, "pull", "oci:"+layoutDir+":v1", "os"); err != nil {
		t.Fatal(err)
	}
	out, err := runOCI(t, "--repo", rdir, "--insecure", "prepare-boot", "--bootdir", bootdir, "--cmdline", "rw", "--cmdline", "console=ttyS0", "os")
	if err != nil {
		t.Fatal(err)
	}
	karg := strings.TrimSpace(out)
	hex, ok := strings.CutPrefix(karg, "composefs.digest=?v1-sha512-12:")
	if !ok || len(hex) != 128 {
		t.Fatalf("prepare-boot printed %q", out)
	}
	for _, sub := range []string{"var", "etc/upper", "etc/work"} {
		if fi, err := os.Stat(filepath.Join(sysroot, "state/deploy", hex, sub)); err != nil || !fi.IsDir() {
			t.Errorf("state directory %s: %v", sub, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(rdir, "images", hex)); err != nil {
		t.Errorf("the bootable image is not stored: %v", err)
	}
	wantEntry := "# File created by composefs\ntitle todoOS\nversion 0-todo\nlinux /6.1.0-test/vmlinuz\ninitrd /6.1.0-test/initramfs.img\n" +
		"options " + karg + " rw console=ttyS0\n"
	for name, want := range map[string]string{
		"loader/entries/6.1.0-test.conf": wantEntry,
		"6.1.0-test/vmlinuz":             strings.Repeat("K", 5000),
		"6.1.0-test/initramfs.img":       "initramfs",
	} {
		if b, err := os.ReadFile(filepath.Join(bootdir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	code, kout := runRepo(t, rdir, nil, "compute-karg", "--oci", "os")
	if code != 0 || strings.TrimSpace(kout) != strings.Replace(karg, "?", "", 1) {
		t.Errorf("compute-karg --oci: %d %q, want %s without ?", code, kout, karg)
	}
	// Without a kernel, only --bootdir "" prepares the image.
	bare, err := mutate.AppendLayers(empty.Image, ociTestLayer(t, map[string]string{"usr/bin/init": "x", "boot/k": "k", "sysroot/x": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir, "pull", "oci:"+ociTestLayout(t, bare, "v3")+":v3", "bare"); err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir, "prepare-boot", "--bootdir", bootdir, "bare"); !errors.Is(err, boot.ErrNoKernel) {
		t.Errorf("prepare-boot of an image without a kernel: %v, want ErrNoKernel", err)
	}
	if out, err := runOCI(t, "--repo", rdir, "prepare-boot", "--bootdir", "", "bare"); err != nil || !strings.HasPrefix(out, "composefs.digest=v1-sha512-12:") {
		t.Errorf("prepare-boot --bootdir \"\": %q %v", out, err)
	}

	selinux, err := mutate.AppendLayers(img, ociTestLayer(t, map[string]string{"etc/selinux/config": "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir, "pull", "oci:"+ociTestLayout(t, selinux, "v2")+":v2", "selinux"); err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir, "prepare-boot", "--bootdir", "", "selinux"); err == nil || !strings.Contains(err.Error(), "SELinux policy") {
		t.Errorf("prepare-boot of an image with an SELinux policy: %v", err)
	}
}
