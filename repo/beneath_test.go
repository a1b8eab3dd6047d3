package repo

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

// outsideDir makes a directory outside the repository holding files that
// garbage collection would remove if it followed a symlink there: names
// of objects, of leftovers, a subdirectory.
func outsideDir(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	names := []string{strings.Repeat("c", 62), "link-dead", "obj-0123", "sub/keep"}
	for _, n := range names {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, names
}

func checkOutside(t *testing.T, dir string, names []string) {
	t.Helper()
	for _, n := range names {
		if data, err := os.ReadFile(filepath.Join(dir, n)); err != nil || string(data) != "precious" {
			t.Errorf("%s outside the repository: %v", n, err)
		}
	}
}

// A directory of the repository replaced by a symlink to another
// directory: gc and fsck report it, and never remove or write anything
// there.
func TestGCAndFsckStayInside(t *testing.T) {
	for _, what := range []string{"tmp", "objects/cc"} {
		t.Run(strings.ReplaceAll(what, "/", "-"), func(t *testing.T) {
			r := newRepo(t, fsverity.SHA256)
			src := sampleTree(t, 5)
			if _, err := r.CreateImage(ctx, src, "x", CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := r.Untag("x"); err != nil { // everything is garbage
				t.Fatal(err)
			}
			outside, names := outsideDir(t)
			link := filepath.Join(r.Dir(), what)
			if err := os.RemoveAll(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			r, err := Open(r.Dir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()

			f, err := r.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(f.Problems, func(p Problem) bool { return p.Kind == KindUnexpected && p.Path == what }) {
				t.Errorf("fsck did not report %s: %+v", what, f.Problems)
			}
			g, err := r.GC(ctx, GCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(g.Warnings, func(w string) bool { return strings.HasPrefix(w, what+":") }) {
				t.Errorf("gc did not report %s: %q", what, g.Warnings)
			}
			if g.ObjectsRemoved == 0 {
				t.Errorf("gc removed nothing: %+v", g)
			}
			checkOutside(t, outside, names)
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the symlink %s was removed or replaced: %v", what, err)
			}
		})
	}
}

// An import never writes through a symlinked tmp/ (where references are
// made), images/ or objects/XX.
func TestImportStaysInside(t *testing.T) {
	src := sampleTree(t, 6)
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fanout := ""
	root.Walk(func(_ string, n *tree.Node) error {
		if fanout == "" && hasObject(n) {
			fanout = "objects/" + n.Payload[:2]
		}
		return nil
	})
	for _, what := range []string{"tmp", "images", fanout} {
		t.Run(strings.ReplaceAll(what, "/", "-"), func(t *testing.T) {
			r := newRepo(t, fsverity.SHA256)
			outside, names := outsideDir(t)
			link := filepath.Join(r.Dir(), what)
			os.RemoveAll(link)
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			r, err := Open(r.Dir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			_, err = r.CreateImage(ctx, src, "x", CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("import through a symlinked %s: %v", what, err)
			}
			checkOutside(t, outside, names)
			if ents, _ := os.ReadDir(outside); len(ents) != 4 {
				t.Errorf("%d entries outside the repository, want 4", len(ents))
			}
		})
	}
}
