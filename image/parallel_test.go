package image_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/tree"
)

// bigTree builds a tree deep and wide enough for the writer to convert
// its subtrees in parallel, with whiteouts, hard links and shared xattrs
// throughout.
func bigTree(t *testing.T) *tree.Node {
	t.Helper()
	root := tree.New(tree.ModeDir | 0o755)
	for a := range 4 {
		da := mkdir(t, root, fmt.Sprintf("a%d", a))
		for b := range 5 {
			db := mkdir(t, da, fmt.Sprintf("b%d", b))
			var first *tree.Node
			for c := range 40 {
				f := tree.New(tree.ModeRegular | 0o644)
				f.Size = uint64(100 + c)
				f.Payload = fmt.Sprintf("%02x/%062x", c, a*1000+b*100+c)
				f.SetXattr("user.shared", []byte("same"))
				if err := db.AddChild(fmt.Sprintf("f%02d", c), f); err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = f
				}
			}
			wh := tree.New(tree.ModeChar)
			if err := db.AddChild("gone", wh); err != nil {
				t.Fatal(err)
			}
			link := tree.New(tree.ModeRegular | 0o644)
			if err := db.AddChild("zlink", link); err != nil {
				t.Fatal(err)
			}
			if err := link.MakeHardlink(first); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func mkdir(t *testing.T, parent *tree.Node, name string) *tree.Node {
	t.Helper()
	d := tree.New(tree.ModeDir | 0o755)
	if err := parent.AddChild(name, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The image is the same byte for byte whether its subtrees are converted
// by one goroutine or several.
func TestWriteSameInParallel(t *testing.T) {
	root := bigTree(t)
	write := func(procs int) []byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		var buf bytes.Buffer
		if err := image.Write(&buf, root, image.DefaultOptions); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one := write(1)
	for _, procs := range []int{2, 4, 8} {
		if got := write(procs); !bytes.Equal(got, one) {
			t.Fatalf("GOMAXPROCS=%d: image differs from the one written by one goroutine", procs)
		}
	}
}

// With several bad subtrees, the error is about the first one in tree
// order, however many goroutines convert them.
func TestWriteErrorFirstInTreeOrder(t *testing.T) {
	root := bigTree(t)
	for _, p := range []string{"a1/b3/f05", "a2/b0/f01", "a3/b4/f39"} {
		n := root.LookupPath(p)
		n.Mode = tree.ModeSymlink | 0o777 // a symlink without a target
		n.Payload = ""
	}
	for _, procs := range []int{1, 2, 8} {
		old := runtime.GOMAXPROCS(procs)
		err := image.Write(&bytes.Buffer{}, root, image.DefaultOptions)
		runtime.GOMAXPROCS(old)
		if err == nil || !strings.Contains(err.Error(), "a1/b3/f05") {
			t.Errorf("GOMAXPROCS=%d: %v, want the error about a1/b3/f05", procs, err)
		}
	}
}
