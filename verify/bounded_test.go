package verify_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
	"github.com/gocfs/gocfs/verify"
)

// TestProblemsBounded: problems about a file 10,000 directories deep, and
// about a 4,000-byte redirect, quote the path and the value shortened.
func TestProblemsBounded(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	dir := root
	for i := 0; i < 10000; i++ {
		sub := tree.New(tree.ModeDir | 0o755)
		if err := dir.AddChild("d", sub); err != nil {
			t.Fatal(err)
		}
		dir = sub
	}
	f := tree.New(tree.ModeRegular | 0o644)
	f.Size = 10
	f.Payload = strings.Repeat("x/", 2000)
	if err := dir.AddChild("f", f); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := image.Write(&b, root, image.DefaultOptions); err != nil {
		t.Fatal(err)
	}
	r := check(t, b.Bytes(), verify.Options{})
	if len(r.Problems) != 1 || r.Problems[0].What != "redirect" {
		t.Fatalf("problems: %.2000s", problems(r))
	}
	p := r.Problems[0]
	if len(p.Path) > 2*schema.ShortenLimit || !strings.HasPrefix(p.Path, "/d/d/d") || !strings.HasSuffix(p.Path, "/d/f") {
		t.Errorf("path of %d bytes: %.400s", len(p.Path), p.Path)
	}
	if len(p.String()) > 800 {
		t.Errorf("problem of %d bytes: %.1000s", len(p.String()), p)
	}
}

// TestRedirectSlash: the redirect "/" names no object: a problem.
func TestRedirectSlash(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	f := tree.New(tree.ModeRegular | 0o644)
	f.Size = 10
	f.Payload = "s"
	if err := root.AddChild("f", f); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := image.Write(&b, root, image.DefaultOptions); err != nil {
		t.Fatal(err)
	}
	img := b.Bytes()
	testutil.PatchXattr(t, img, "/f", schema.Redirect, []byte("/"))
	r := check(t, img, verify.Options{})
	if len(r.Problems) != 1 || r.Problems[0].What != "redirect" || r.Problems[0].Path != "/f" {
		t.Errorf("problems: %s", problems(r))
	}
}
