package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// layout makes top/{a/f, a/link -> /, dirlink -> outside} and outside/f.
func layout(t *testing.T) (top, outside string) {
	t.Helper()
	top, outside = t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(top, "a"), 0o755)
	os.WriteFile(filepath.Join(top, "a", "f"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(outside, "f"), []byte("outside"), 0o644)
	os.Symlink("/", filepath.Join(top, "a", "link"))
	os.Symlink(outside, filepath.Join(top, "dirlink"))
	return top, outside
}

// Both ways of resolving (openat2, and one component at a time for
// kernels without it) open what is beneath and refuse the rest.
func TestOpen(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		noOpenat2.Store(fallback)
		top, _ := layout(t)
		d, err := OpenDir(top)
		if err != nil {
			t.Fatal(err)
		}
		f, err := d.Open("a/f", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("fallback %v: %v", fallback, err)
		}
		f.Close()
		for _, p := range []string{"dirlink/f", "a/link", "a/link/etc/passwd", "dirlink"} {
			if _, err := d.Open(p, unix.O_RDONLY, 0); !errors.Is(err, ErrSymlink) {
				t.Errorf("fallback %v: %s: %v, want ErrSymlink", fallback, p, err)
			}
		}
		for _, p := range []string{"../x", "a/../a/f", "/etc/passwd", "", "a//f", "./a/f"} {
			if _, err := d.Open(p, unix.O_RDONLY, 0); err == nil {
				t.Errorf("fallback %v: %q opened", fallback, p)
			}
		}
		if _, err := d.Dir("dirlink", false); !errors.Is(err, ErrSymlink) {
			t.Errorf("fallback %v: Dir through a symlink: %v", fallback, err)
		}
		if _, err := d.Dir("dirlink/new", true); err == nil {
			t.Errorf("fallback %v: Dir made a directory through a symlink", fallback)
		}
		d.Close()
	}
	noOpenat2.Store(false)
}

// RemoveAll removes symlinks, never what they point at.
func TestRemoveAll(t *testing.T) {
	top, outside := layout(t)
	d, err := OpenDir(top)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range []string{"dirlink", "a", "missing"} {
		if err := d.RemoveAll(name); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(top); len(ents) != 0 {
		t.Errorf("%d entries left", len(ents))
	}
	if data, err := os.ReadFile(filepath.Join(outside, "f")); err != nil || string(data) != "outside" {
		t.Errorf("the file outside: %q, %v", data, err)
	}
	if _, err := os.Stat("/etc"); err != nil {
		t.Fatal(err)
	}
}
