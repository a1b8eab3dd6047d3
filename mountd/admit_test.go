package mountd

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/tree"
)

// smallImage is the image of a tiny tree: a directory, a file with inline
// content, a symlink, written by package image.
func smallImage(t testing.TB) []byte {
	t.Helper()
	root := tree.New(0o40755)
	f := tree.New(0o100644)
	l := tree.New(0o120777)
	if err := errors.Join(f.SetContent([]byte("hello\n")), l.SetSymlink("file")); err != nil {
		t.Fatal(err)
	}
	d := tree.New(0o40700)
	for name, n := range map[string]*tree.Node{"file": f, "link": l, "dir": d} {
		if err := root.AddChild(name, n); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := image.Write(&b, root, image.DefaultOptions); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestAdmit(t *testing.T) {
	img := smallImage(t)
	if err := Admit(bytes.NewReader(img), int64(len(img)), "small"); err != nil {
		t.Fatalf("the writer's own image: %v", err)
	}
	// A byte of the padding between the composefs header and the
	// superblock: nothing reads it, so the verifier lets it pass, and
	// only the canonical rewrite sees it.
	bad := bytes.Clone(img)
	bad[100] = 1
	err := Admit(bytes.NewReader(bad), int64(len(bad)), "padded")
	var r *Refusal
	if !errors.As(err, &r) || !errors.Is(err, ErrImageRefused) || !bytes.Contains([]byte(r.Reason), []byte("offset 0x64")) {
		t.Errorf("non-canonical padding: %v, want a refusal naming offset 0x64", err)
	}
}

// FuzzAdmit: whatever the bytes, Admit answers (no panic, no hang), and
// what it admits is admitted again (the rule is a fixed point).
func FuzzAdmit(f *testing.F) {
	f.Add(smallImage(f))
	f.Fuzz(func(t *testing.T, img []byte) {
		if Admit(bytes.NewReader(img), int64(len(img)), "fuzz") != nil {
			return
		}
		if err := Admit(bytes.NewReader(bytes.Clone(img)), int64(len(img)), "again"); err != nil {
			t.Fatalf("admitted once, refused again: %v", err)
		}
	})
}
