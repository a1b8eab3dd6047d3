package erofs_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/tree"
)

// walked is what a walk saw of one entry.
type walked struct {
	path   string
	parent uint64
	depth  int
	again  bool
}

// walkAll walks img, entering every directory, and returns what it saw.
func walkAll(t *testing.T, img *erofs.Image) []walked {
	t.Helper()
	var got []walked
	err := img.Walk(func(e *erofs.WalkEntry) ([]erofs.DirEntry, error) {
		got = append(got, walked{e.Path(), e.Parent, e.Depth, e.Again})
		in, err := img.Inode(e.Nid)
		if err != nil || !in.IsDir() {
			return nil, err
		}
		return in.ReadDir()
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWalk: every inode once, depth first in directory order, with its
// path, parent and depth; a directory reached through a second entry (a
// hard link, or a cycle back to the root) is visited with Again and not
// entered, so the walk ends.
func TestWalk(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	a, b := tree.New(tree.ModeDir|0o755), tree.New(tree.ModeDir|0o755)
	must(t, root.AddChild("a", a))
	must(t, root.AddChild("b", b))
	must(t, a.AddChild("f", tree.New(tree.ModeRegular|0o644)))
	must(t, b.AddChild("again", tree.New(tree.ModeDir|0o755)))
	must(t, b.AddChild("loop", tree.New(tree.ModeDir|0o755)))
	var buf bytes.Buffer
	must(t, image.Write(&buf, root, image.DefaultOptions))
	raw := buf.Bytes()
	img, err := erofs.Open(bytes.NewReader(raw), int64(len(raw)))
	must(t, err)
	nid := func(p string) uint64 {
		in, err := img.FS("").Inode(p)
		must(t, err)
		return in.Nid
	}
	rootNid, aNid, bNid := img.RootNid(), nid("a"), nid("b")

	var names []string
	for _, w := range walkAll(t, img) {
		if w.depth == 1 && len(w.path) == 3 {
			continue // one of the root's whiteouts, /00 to /ff
		}
		names = append(names, w.path)
	}
	if strings.Join(names, " ") != "/ /a /a/f /b /b/again /b/loop" {
		t.Fatalf("walk order: %v", names)
	}

	testutil.PatchDirent(t, raw, bNid, "again", aNid)   // /b/again is /a again
	testutil.PatchDirent(t, raw, bNid, "loop", rootNid) // /b/loop is the root
	img, err = erofs.Open(bytes.NewReader(raw), int64(len(raw)))
	must(t, err)
	want := map[string]walked{
		"/":        {"/", rootNid, 0, false},
		"/a":       {"/a", rootNid, 1, false},
		"/a/f":     {"/a/f", aNid, 2, false},
		"/b":       {"/b", rootNid, 1, false},
		"/b/again": {"/b/again", bNid, 2, true},
		"/b/loop":  {"/b/loop", bNid, 2, true},
	}
	n := 0
	for _, w := range walkAll(t, img) {
		if exp, ok := want[w.path]; ok {
			n++
			if w != exp {
				t.Errorf("%s: %+v, want %+v", w.path, w, exp)
			}
		}
	}
	if n != len(want) {
		t.Errorf("saw %d of the %d entries", n, len(want))
	}

	// The guard the io/fs view and the FUSE server keep says why.
	g := erofs.NewDirGuard(img)
	must(t, g.Enter(rootNid, "a", aNid))
	must(t, g.Enter(rootNid, "a", aNid)) // a lookup again
	if err := g.Enter(bNid, "again", aNid); !errors.Is(err, erofs.ErrCorrupt) || !strings.Contains(err.Error(), "two entries") {
		t.Errorf("directory hard link: %v", err)
	}
	if err := g.Enter(bNid, "loop", rootNid); !errors.Is(err, erofs.ErrCorrupt) || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if !g.Entered(aNid) || g.Entered(bNid) {
		t.Errorf("Entered: a %v, b %v", g.Entered(aNid), g.Entered(bNid))
	}
}
