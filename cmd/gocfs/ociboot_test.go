package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// oci pull --bootable stores the bootable variant and links it to the
// image by the configuration stream's named reference
// composefs.image.boot.v1 (BOOT_IMAGE_REF_KEY_V1,
// crates/composefs-oci/src/lib.rs): its digest is compute-id --bootable's
// and compute-karg --oci's, gc keeps it, mount --bootable mounts it, dump
// --bootable prints its tree; --expected-digest finds it, or refuses a
// digest no (xattr mode, EROFS version) makes (cfsctl's oci pull,
// crates/composefs-ctl/src/lib.rs).
func TestOCIBootable(t *testing.T) {
	c := newCLI(t)
	img, err := mutate.AppendLayers(empty.Image, ociTestLayer(t, map[string]string{
		"usr/bin/init": "#!/bin/sh\n", "boot/vmlinuz": "kernel", "sysroot/x": "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	src := "oci:" + ociTestLayout(t, img, "v1") + ":v1"
	dir := filepath.Join(t.TempDir(), "repo")
	c.ok("--repo", dir, "init", "--hash", "sha256")
	plain := strings.TrimSpace(c.ok("--repo", dir, "oci", "pull", src, "plain"))
	c.fails("--expected-digest requires --bootable", "--repo", dir, "oci", "pull", "--expected-digest", strings.Repeat("0", 64), src, "x")
	c.fails("no boot image linked", "--repo", dir, "oci", "mount", "--bootable", "plain", t.TempDir())

	computed := strings.TrimSpace(c.ok("--repo", dir, "oci", "compute-id", "--bootable", "plain"))
	out := strings.Split(strings.TrimSpace(c.ok("--repo", dir, "oci", "pull", "--bootable", src, "os")), "\n")
	if len(out) != 2 || out[0] != plain || out[1] != "Boot image: "+computed || computed == plain {
		t.Fatalf("pull --bootable printed %q; the plain image is %s, compute-id --bootable %s", out, plain, computed)
	}
	if karg := strings.TrimSpace(c.ok("--repo", dir, "compute-karg", "--oci", "os")); karg != "composefs.digest=v1-sha256-12:"+computed {
		t.Errorf("compute-karg --oci = %s, want the digest %s", karg, computed)
	}
	if got := c.ok("--repo", dir, "oci", "inspect", "os"); !strings.Contains(got, `"composefs.image.boot.v1": "`+computed+`"`) {
		t.Errorf("inspect does not show the link composefs.image.boot.v1 -> %s:\n%s", computed, got)
	}
	dump := c.ok("--repo", dir, "oci", "dump", "--bootable", "os")
	if strings.Contains(dump, "/boot/vmlinuz") || strings.Contains(dump, "/sysroot/x") || !strings.Contains(dump, "/usr/bin/init") {
		t.Errorf("dump --bootable:\n%s", dump)
	}
	// gc keeps the linked image; untagged, it goes.
	c.ok("--repo", dir, "gc")
	if _, err := os.Lstat(filepath.Join(dir, "images", computed)); err != nil {
		t.Fatalf("gc removed the linked boot image: %v", err)
	}
	c.ok("--repo", dir, "fsck")
	if os.Geteuid() == 0 {
		mnt := mountPoint(t)
		c.ok("--repo", dir, "oci", "mount", "--bootable", "os", mnt)
		b, err := os.ReadFile(filepath.Join(mnt, "usr/bin/init"))
		ents, _ := os.ReadDir(filepath.Join(mnt, "boot"))
		if err != nil || string(b) != "#!/bin/sh\n" || len(ents) != 0 {
			t.Errorf("mount --bootable: init %q %v, /boot %v", b, err, ents)
		}
		// The mount shows exactly the paths dump --bootable lists.
		var mounted, dumped []string
		filepath.WalkDir(mnt, func(p string, _ fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(mnt, p)
			mounted = append(mounted, "/"+strings.TrimPrefix(rel, "."))
			return err
		})
		for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
			dumped = append(dumped, strings.Fields(line)[0])
		}
		sort.Strings(dumped)
		if !slices.Equal(mounted, dumped) {
			t.Errorf("mount --bootable shows %q, dump --bootable %q", mounted, dumped)
		}
		c.ok("umount", mnt)
	}
	// --expected-digest: in a new repository the default mode's V1 image
	// is computed, stored and linked; a digest nothing makes is refused.
	dir2 := filepath.Join(t.TempDir(), "repo2")
	c.ok("--repo", dir2, "init", "--hash", "sha256")
	c.fails("no boot image configuration matched expected digest "+strings.Repeat("0", 64)+" (tried 2 ",
		"--repo", dir2, "oci", "pull", "--bootable", "--expected-digest", strings.Repeat("0", 64), src, "os")
	c.fails("no boot image linked", "--repo", dir2, "oci", "mount", "--bootable", "os", t.TempDir())
	user := strings.TrimSpace(c.ok("--repo", dir2, "oci", "compute-id", "--bootable", "--xattrs", "keep-user-xattrs", "os"))
	if user == computed {
		t.Fatal("the keep-user-xattrs bootable image is the default one")
	}
	got := c.ok("--repo", dir2, "oci", "pull", "--bootable", "--expected-digest", user, src, "os")
	if !strings.HasSuffix(got, "Boot image: "+user+"\n") {
		t.Errorf("pull --expected-digest (keep-user-xattrs) printed %q, want %s", got, user)
	}
	if ins := c.ok("--repo", dir2, "oci", "inspect", "os"); !strings.Contains(ins, `"composefs.image.boot.v1.xattrs=keep-user-xattrs": "`+user+`"`) {
		t.Errorf("inspect does not show the keep-user-xattrs link:\n%s", ins)
	}
	c.ok("--repo", dir2, "gc")
	if _, err := os.Lstat(filepath.Join(dir2, "images", user)); err != nil {
		t.Fatalf("gc removed the boot image --expected-digest linked: %v", err)
	}
	got = c.ok("--repo", dir2, "oci", "pull", "--bootable", "--expected-digest", computed, src, "os")
	if !strings.HasSuffix(got, "Boot image: "+computed+"\n") {
		t.Errorf("pull --expected-digest (default) printed %q, want %s", got, computed)
	}
	// Both links are kept: pulling again keeps those linked before.
	ins := c.ok("--repo", dir2, "oci", "inspect", "os")
	for key, want := range map[string]string{"composefs.image.boot.v1": computed, "composefs.image.boot.v1.xattrs=keep-user-xattrs": user} {
		if !strings.Contains(ins, `"`+key+`": "`+want+`"`) {
			t.Errorf("inspect after pulling again lacks %s -> %s:\n%s", key, want, ins)
		}
	}
}
