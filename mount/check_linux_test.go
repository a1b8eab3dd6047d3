//go:build linux

package mount

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
)

// TestMountChecksWhatItMounts mounts an image that others may write (mode
// 0666): the check is made on a sealed private copy and that copy is
// mounted, so that rewriting the file after the check changes nothing (in
// place, EROFS would read the new bytes: the check would be worthless).
func TestMountChecksWhatItMounts(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	orig, err := os.ReadFile(f.img)
	must(t, err)
	img := filepath.Join(t.TempDir(), "writable.cfs")
	must(t, os.WriteFile(img, orig, 0o666))
	must(t, os.Chmod(img, 0o666))

	dir := target(t)
	loopsBefore := loopBackings(t)
	mustMount(t, img, dir, Options{Basedirs: []string{f.store}})
	defer mustUnmount(t, dir)
	var memfdLoop bool
	for dev, b := range loopBackings(t) {
		if _, ok := loopsBefore[dev]; !ok && strings.HasPrefix(b, "/memfd:gocfs:") {
			memfdLoop = true
		}
	}
	if !memfdLoop {
		t.Errorf("no loop device over a sealed memfd copy of the image: %v", loopBackings(t))
	}
	// Rewrite the image in place: same size, every block garbage.
	w, err := os.OpenFile(img, os.O_WRONLY, 0)
	must(t, err)
	_, err = w.WriteAt(bytes.Repeat([]byte{0xa5}, len(orig)), 0)
	must(t, err)
	must(t, w.Close())
	testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))
}

// TestStableFile checks which image files are mounted in place.
func TestStableFile(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		mode   os.FileMode
		uid    int
		stable bool
	}{
		{"root-0644", 0o644, 0, true},
		{"root-0600", 0o600, 0, true},
		{"group-writable", 0o664, 0, false},
		{"world-writable", 0o666, 0, false},
		{"nobody's", 0o644, 65534, false},
	} {
		p := filepath.Join(dir, c.name)
		must(t, os.WriteFile(p, []byte("x"), c.mode))
		must(t, os.Chmod(p, c.mode))
		must(t, os.Chown(p, c.uid, 0))
		fh := mustOpen(t, p)
		var sfs = stableFile(fh)
		if sfs != c.stable {
			t.Errorf("%s: stable %v, want %v", c.name, sfs, c.stable)
		}
	}
	copied, _, err := sealedCopy(mustOpen(t, filepath.Join(dir, "nobody's")), "x")
	must(t, err)
	defer copied.Close()
	if !stableFile(copied) {
		t.Errorf("a sealed memfd is not stable")
	}
}

// TestMountRefusesMalformedImage checks the kernel mount's structural
// check on an image whose root entry points past the end of the image.
func TestMountRefusesMalformedImage(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	orig, err := os.ReadFile(f.img)
	must(t, err)
	img := filepath.Join(t.TempDir(), "bad.cfs")
	must(t, os.WriteFile(img, orig, 0o644))
	testutil.SetEntryNid(t, img, sizeName(0), 1<<40)
	dir := target(t)
	err = Mount(img, dir, Options{Basedirs: []string{f.store}})
	if !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), "/"+sizeName(0)) {
		t.Errorf("Mount: %v, want ErrInvalidImage naming /%s", err, sizeName(0))
	}
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("mounted despite the check")
	}
	mustMount(t, img, dir, Options{Basedirs: []string{f.store}, NoVerify: true})
	mustUnmount(t, dir)
}
