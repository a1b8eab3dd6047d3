package snapshotter

import (
	"context"
	"crypto/md5"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/internal/testutil"
	cfsmount "github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// listScript lists a root file system as busybox sees it: every entry's
// name (and symlink target), raw mode, owner, size, mtime and link count,
// then every regular file's MD5. The container runs it, and so does the
// test in a chroot of the image `oci pull` + `oci mount` give.
const listScript = `/bin/busybox find / -xdev -exec /bin/busybox stat -c '%N|%f|%u|%g|%s|%Y|%h' {} \; &&
/bin/busybox find / -xdev -type f -exec /bin/busybox md5sum {} \;`

// compared returns the lines of a listing, sorted, less those that differ
// by design: the root and /tmp (the container writes /tmp/written), and
// the mount points runc mounts on.
func compared(listing string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		skip := false
		for _, p := range []string{"/|", "/proc|", "/dev|", "/sys|", "/run|", "/tmp|", "/tmp/written|", "  /tmp/written"} {
			if strings.HasPrefix(l, p) || strings.HasSuffix(l, p) {
				skip = true
			}
		}
		if !skip {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestContainerd runs Debian's containerd and runc with the snapshotter:
// images pulled from a registry through it, containers run from them that
// see exactly the tree `oci pull` + `oci mount` give, a second image that
// adds only its new files, garbage collection that frees everything, and
// a snapshotter killed during a pull that restarts into a repository fsck
// finds clean.
func TestContainerd(t *testing.T) {
	needRoot(t)
	tools := needTools(t, map[string]string{
		"containerd": "containerd", "ctr": "containerd", "runc": "runc",
		"busybox": "busybox-static",
	})
	busybox := staticBusybox(t, tools["busybox"])
	dir := t.TempDir()
	reg := testutil.StartRegistry(t).Addr
	base := layerTar(t, baseLayer(t, busybox))
	l2, l3 := layerTar(t, layer2()), layerTar(t, layer3())
	ref1, ref2, ref3 := reg+"/gocfs/one:latest", reg+"/gocfs/two:latest", reg+"/gocfs/big:latest"
	pushImage(t, ref1, base, l2, l3)
	pushImage(t, ref2, base, l2, layerTar(t, image2Top()))
	big := bigLayer(48 << 20)
	pushImage(t, ref3, base, layerTar(t, big))

	root, sock := filepath.Join(dir, "sn"), filepath.Join(dir, "gocfs.sock")
	t.Cleanup(func() { unmountAll(t, root) })
	snap := startSnapshotter(t, dir, root, sock)
	c := startContainerd(t, tools["containerd"], tools["ctr"], filepath.Join(dir, "containerd"), sock)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the snapshotter's log:\n%s", tail(snap.output(), 4000))
		}
	})

	t0 := time.Now()
	c.must("image", "pull", "--plain-http", "--snapshotter", "gocfs", ref1)
	t.Logf("pulled %s in %v", ref1, time.Since(t0))
	view := runContainer(t, c, ref1)
	r, err := repo.Open(filepath.Join(root, repoDir), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkSameAsPull(t, r, ref1, view)

	checkSecondImage(t, c, r, ref2)
	checkGC(t, c, r, ref1, ref2)
	snap = checkKilledPull(t, c, snap, dir, root, sock, ref3, big[1].body)
	snap.stop()
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("fsck of the snapshotter's repository: %+v", res.Problems)
	}
}

// staticBusybox returns path if it is a static executable (a container
// has no libraries); the test is skipped otherwise.
func staticBusybox(t *testing.T, path string) string {
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("busybox: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("%s is dynamically linked (install busybox-static)", path)
		}
	}
	return path
}

// runContainer runs a container of ref that reads files of several
// layers, writes to its root file system, and lists it; it returns the
// listing.
func runContainer(t *testing.T, c *containerd, ref string) string {
	t.Helper()
	script := `set -e
/bin/busybox cat /data/layer2.txt /data/l3.txt /data/opq/new.txt /data/link >/dev/null
echo written >/tmp/written
/bin/busybox cat /tmp/written
test ! -e /data/gone && test ! -e /data/opq/old && test ! -e /data/hl2
echo ===
` + listScript
	out := c.must("run", "--rm", "--snapshotter", "gocfs", ref, "c1", "/bin/sh", "-c", script)
	head, listing, ok := strings.Cut(out, "===\n")
	if !ok || strings.TrimSpace(head) != "written" {
		t.Fatalf("the container's output:\n%s", out)
	}
	return listing
}

// checkSameAsPull pulls ref with `oci pull` into the snapshotter's
// repository: its image must be the snapshotter's image of the chain, digest
// for digest, and the tree it mounts the container's, file by file.
func checkSameAsPull(t *testing.T, r *repo.Repo, ref, view string) {
	t.Helper()
	ctx := context.Background()
	res, err := oci.Pull(ctx, r, ref, oci.PullOptions{Name: "pulled"})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := r.Refs()
	if err != nil {
		t.Fatal(err)
	}
	same := false
	for _, x := range refs {
		same = same || strings.HasPrefix(x.Name, refPrefix) && x.Image == res.Image
	}
	if !same {
		t.Errorf("oci pull gave the image %s; the snapshotter's chain images are %v", res.Image, refs)
	}
	mnt := t.TempDir()
	m, err := oci.Mount(ctx, r, "pulled", mnt, cfsmount.Options{AllowSetuid: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	out, err := exec.Command("chroot", mnt, "/bin/sh", "-c", listScript).CombinedOutput()
	if err != nil {
		t.Fatalf("listing the oci mount: %v\n%s", err, out)
	}
	want, got := compared(string(out)), compared(view)
	if !slices.Equal(want, got) {
		t.Errorf("the container's tree differs from the oci mount's:\n%s", diffLines(want, got))
	}
	if len(want) < 30 {
		t.Errorf("only %d entries compared:\n%s", len(want), strings.Join(want, "\n"))
	}
	if err := oci.Remove(r, "pulled"); err != nil {
		t.Fatal(err)
	}
}

// diffLines says which lines only want or only got have.
func diffLines(want, got []string) string {
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// countObjects counts the objects of the repository (images and split
// streams included).
func countObjects(t *testing.T, r *repo.Repo) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(r.ObjectsDir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkSecondImage pulls an image that shares two layers and two more
// files with the first: the repository gets its new files and its new
// layer's split stream, nothing else.
func checkSecondImage(t *testing.T, c *containerd, r *repo.Repo, ref string) {
	t.Helper()
	before := countObjects(t, r)
	c.must("image", "pull", "--plain-http", "--snapshotter", "gocfs", ref)
	if added := countObjects(t, r) - before; added != image2NewObjects+1 {
		t.Errorf("pulling the second image added %d objects, want %d (its new files and its top layer's split stream)", added, image2NewObjects+1)
	}
	out := c.must("run", "--rm", "--snapshotter", "gocfs", ref, "c2", "/bin/busybox", "cat", "/data/new1.txt", "/data/layer2.txt")
	if want := text("only in image two, first", 200) + text("second layer", 250); out != want {
		t.Errorf("the second image's container read %q, want %q", out, want)
	}
}

// checkGC removes the images; containerd's garbage collection removes
// their snapshots and calls Cleanup, after which no object is left.
func checkGC(t *testing.T, c *containerd, r *repo.Repo, refs ...string) {
	t.Helper()
	c.must(append([]string{"image", "rm", "--sync"}, refs...)...)
	deadline := time.Now().Add(15 * time.Second)
	for countObjects(t, r) != 0 {
		if time.Now().After(deadline) {
			out, _ := c.run("snapshots", "--snapshotter", "gocfs", "ls")
			t.Fatalf("%d objects left after the images were removed; snapshots:\n%s", countObjects(t, r), out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkKilledPull kills the snapshotter while it imports a large layer,
// starts it again, and pulls again: the pull and a container of the image
// work. It returns the running snapshotter.
func checkKilledPull(t *testing.T, c *containerd, snap *process, dir, root, sock, ref, big string) *process {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.run("image", "pull", "--plain-http", "--snapshotter", "gocfs", ref)
		done <- err
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !bigUnpacked(root, int64(len(big))) {
		select {
		case err := <-done:
			t.Fatalf("the pull ended before the snapshotter was killed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the large layer was not unpacked within 60s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	snap.kill()
	if err := <-done; err == nil {
		t.Log("the pull succeeded although the snapshotter was killed (it had committed already)")
	}
	snap = startSnapshotter(t, dir, root, sock)
	// containerd's gRPC connection to the snapshotter backs off after
	// the refused connections; a pull fails (gRPC "unavailable") until it
	// reconnects.
	for i := 0; ; i++ {
		_, err := c.run("image", "pull", "--plain-http", "--snapshotter", "gocfs", ref)
		if err == nil {
			break
		}
		if i == 10 || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("%v\nthe snapshotter's log:\n%s", err, tail(snap.output(), 3000))
		}
		time.Sleep(time.Second)
	}
	out := c.must("run", "--rm", "--snapshotter", "gocfs", ref, "c3", "/bin/busybox", "md5sum", "/data/big")
	if want := fmt.Sprintf("%x  /data/big", md5.Sum([]byte(big))); strings.TrimSpace(out) != want {
		t.Errorf("the big file in the container: %q, want %q", out, want)
	}
	return snap
}

// bigUnpacked reports whether an upper directory under root holds the
// large file whole: the applier is done and Commit is about to import it.
func bigUnpacked(root string, size int64) bool {
	matches, _ := filepath.Glob(filepath.Join(root, snapshotsDir, "*", "fs", "data", "big"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Size() == size {
			return true
		}
	}
	return false
}
