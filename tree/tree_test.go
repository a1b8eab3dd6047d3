package tree

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		{"a", nil},
		{strings.Repeat("x", MaxNameLen), nil},
		{"...", nil},
		{"a b\tc", nil},
		{"", ErrEmptyName},
		{strings.Repeat("x", MaxNameLen+1), ErrNameTooLong},
		{".", ErrInvalidName},
		{"..", ErrInvalidName},
		{"a/b", ErrInvalidName},
		{"a\x00b", ErrInvalidName},
	}
	for _, tt := range tests {
		if err := CheckName(tt.name); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("CheckName(%.20q) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestValidMode(t *testing.T) {
	tests := []struct {
		mode uint32
		want bool
	}{
		{ModeRegular | 0o644, true},
		{ModeDir | 0o755, true},
		{ModeSymlink | 0o777, true},
		{ModeBlock, true},
		{ModeChar, true},
		{ModeSocket, true},
		{ModeFIFO, true},
		{0o644, false},
		{0o160000, false}, // S_IFWHT-like, unknown to composefs
		{ModeType, false},
	}
	for _, tt := range tests {
		if got := ValidMode(tt.mode); got != tt.want {
			t.Errorf("ValidMode(%o) = %v, want %v", tt.mode, got, tt.want)
		}
	}
}

// build makes a directory tree from paths; a trailing slash makes a
// directory, anything else a regular file.
func build(t *testing.T, paths ...string) *Node {
	t.Helper()
	root := New(ModeDir | 0o755)
	for _, p := range paths {
		dir := root
		parts := strings.Split(strings.Trim(p, "/"), "/")
		for i, part := range parts {
			if c := dir.Lookup(part); c != nil {
				dir = c
				continue
			}
			mode := uint32(ModeRegular | 0o644)
			if i < len(parts)-1 || strings.HasSuffix(p, "/") {
				mode = ModeDir | 0o755
			}
			c := New(mode)
			if err := dir.AddChild(part, c); err != nil {
				t.Fatalf("AddChild(%q): %v", part, err)
			}
			dir = c
		}
	}
	return root
}

func TestAddChildOrderAndErrors(t *testing.T) {
	root := build(t, "m", "b", "z/", "a", "zz", "B", "\xff", "z/y", "z/x")
	var names []string
	for _, c := range root.Children {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), "B,a,b,m,z,zz,\xff"; got != want {
		t.Errorf("children in order %q, want %q (bytewise)", got, want)
	}
	file := root.Lookup("a")
	linked := root.Lookup("b")
	tests := []struct {
		desc  string
		dir   *Node
		name  string
		child *Node
		want  error
	}{
		{"into a file", file, "x", New(ModeRegular), ErrNotDir},
		{"empty name", root, "", New(ModeRegular), ErrEmptyName},
		{"long name", root, strings.Repeat("n", 256), New(ModeRegular), ErrNameTooLong},
		{"existing name", root, "m", New(ModeRegular), ErrExists},
		{"child with a parent", root.Lookup("z"), "again", linked, ErrAlreadyLinked},
	}
	for _, tt := range tests {
		if err := tt.dir.AddChild(tt.name, tt.child); !errors.Is(err, tt.want) {
			t.Errorf("%s: AddChild = %v, want %v", tt.desc, err, tt.want)
		}
	}
	if len(root.Children) != 7 {
		t.Errorf("a refused AddChild changed the directory: %d children", len(root.Children))
	}
}

func TestLookupPathAndRemove(t *testing.T) {
	root := build(t, "usr/bin/sh", "usr/lib/", "etc/passwd")
	tests := []struct {
		path string
		want string // the node's Path(), "" for not found
	}{
		{"/", "/"},
		{"", "/"},
		{"usr/bin/sh", "/usr/bin/sh"},
		{"//usr//bin/", "/usr/bin"},
		{"/etc/passwd", "/etc/passwd"},
		{"/etc/passwd/x", ""},
		{"/usr/../etc", ""},
		{"/nope", ""},
	}
	for _, tt := range tests {
		n := root.LookupPath(tt.path)
		got := ""
		if n != nil {
			got = n.Path()
		}
		if got != tt.want {
			t.Errorf("LookupPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	bin := root.LookupPath("usr/bin")
	if c := bin.RemoveChild("sh"); c == nil || c.Parent != nil || c.Name != "" {
		t.Fatalf("RemoveChild returned %+v", c)
	}
	if bin.RemoveChild("sh") != nil || root.LookupPath("usr/bin/sh") != nil {
		t.Error("removed child still found")
	}
}

func TestWalk(t *testing.T) {
	root := build(t, "b/2", "b/1", "a", "c/", "b/3/x")
	tests := []struct {
		desc string
		skip string // directory whose children are skipped
		stop string // path at which fn returns an error
		want string
	}{
		{desc: "all", want: "/ /a /b /b/1 /b/2 /b/3 /b/3/x /c"},
		{desc: "skip b", skip: "/b", want: "/ /a /b /c"},
		{desc: "skip b/3", skip: "/b/3", want: "/ /a /b /b/1 /b/2 /b/3 /c"},
		{desc: "stop at b/2", stop: "/b/2", want: "/ /a /b /b/1 /b/2"},
	}
	for _, tt := range tests {
		var got []string
		stopErr := errors.New("stop")
		err := root.Walk(func(p string, n *Node) error {
			got = append(got, p)
			if p != n.Path() {
				return fmt.Errorf("walk path %q, node path %q", p, n.Path())
			}
			switch p {
			case tt.skip:
				return SkipDir
			case tt.stop:
				return stopErr
			}
			return nil
		})
		if tt.stop != "" && !errors.Is(err, stopErr) || tt.stop == "" && err != nil {
			t.Errorf("%s: Walk = %v", tt.desc, err)
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("%s: visited %q, want %q", tt.desc, s, tt.want)
		}
	}
	// A walk from a subtree reports absolute paths.
	var sub []string
	root.LookupPath("b/3").Walk(func(p string, _ *Node) error { sub = append(sub, p); return nil })
	if strings.Join(sub, " ") != "/b/3 /b/3/x" {
		t.Errorf("subtree walk: %q", sub)
	}
}

func TestHardlinks(t *testing.T) {
	tests := []struct {
		desc string
		link func(root *Node) error
		want error
	}{
		{"file to file", func(r *Node) error { return r.Lookup("a").MakeHardlink(r.Lookup("f")) }, nil},
		{"self", func(r *Node) error { f := r.Lookup("f"); return f.MakeHardlink(f) }, ErrHardlinkSelf},
		{"to a directory", func(r *Node) error { return r.Lookup("a").MakeHardlink(r.Lookup("d")) }, ErrHardlinkDir},
		{"a directory", func(r *Node) error { return r.Lookup("d").MakeHardlink(r.Lookup("f")) }, ErrHardlinkDir},
		{"loop", func(r *Node) error {
			a, f := r.Lookup("a"), r.Lookup("f")
			if err := a.MakeHardlink(f); err != nil {
				return err
			}
			return f.MakeHardlink(a)
		}, ErrHardlinkLoop},
	}
	for _, tt := range tests {
		root := build(t, "a", "f", "d/")
		if err := tt.link(root); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tt.desc, err, tt.want)
		}
	}
	root := build(t, "a", "b", "f")
	f := root.Lookup("f")
	for _, n := range []string{"a", "b"} {
		if err := root.Lookup(n).MakeHardlink(f); err != nil {
			t.Fatal(err)
		}
	}
	if f.Nlink != 3 {
		t.Errorf("target nlink %d, want 3", f.Nlink)
	}
	if tg, err := root.Lookup("b").Target(); err != nil || tg != f || root.Lookup("a").Inode() != f || f.Inode() != f {
		t.Errorf("Target/Inode do not lead to the target: %v %v", tg, err)
	}
}

func TestXattrAccounting(t *testing.T) {
	n := New(ModeRegular | 0o644)
	if err := n.SetXattr("user.a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	one := n.XattrSpace()
	if err := n.SetXattr("user.b", []byte("22")); err != nil {
		t.Fatal(err)
	}
	if err := n.SetXattr("user.a", []byte("333")); err != nil { // replaces, moves to the end
		t.Fatal(err)
	}
	if v, ok := n.GetXattr("user.a"); !ok || string(v) != "333" || len(n.Xattrs) != 2 || n.Xattrs[1].Name != "user.a" {
		t.Errorf("replaced xattr: %q %v %+v", v, ok, n.Xattrs)
	}
	if !n.RemoveXattr("user.a") || n.RemoveXattr("user.a") || len(n.Xattrs) != 1 {
		t.Errorf("RemoveXattr: %+v", n.Xattrs)
	}
	if !n.RemoveXattr("user.b") || n.XattrSpace() != 0 {
		t.Errorf("space after removing everything: %d", n.XattrSpace())
	}
	if err := n.SetXattr("user.a", []byte("1")); err != nil || n.XattrSpace() != one {
		t.Errorf("space not restored: %d, want %d (%v)", n.XattrSpace(), one, err)
	}

	tests := []struct {
		desc  string
		name  string
		value []byte
		limit int
		want  error
	}{
		{"empty name", "", nil, ExternalXattrSpace, ErrXattrName},
		{"long name", "user." + strings.Repeat("n", MaxXattrNameLen), nil, ExternalXattrSpace, ErrXattrName},
		{"long value", "user.v", make([]byte, MaxXattrValueLen+1), InternalXattrSpace, ErrXattrValue},
		{"over the external limit", "user.big", make([]byte, ExternalXattrSpace), ExternalXattrSpace, ErrXattrSpace},
		{"fits the internal limit", "user.big", make([]byte, ExternalXattrSpace), InternalXattrSpace, nil},
	}
	for _, tt := range tests {
		m := New(ModeRegular)
		err := m.SetXattrLimit(tt.name, tt.value, tt.limit)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tt.desc, err, tt.want)
		}
		if err != nil && (len(m.Xattrs) != 0 || m.XattrSpace() != 0) {
			t.Errorf("%s: a refused xattr was kept", tt.desc)
		}
	}
}

func TestContentAndSymlink(t *testing.T) {
	tests := []struct {
		desc     string
		set      func(n *Node) error
		wantSize uint64
		want     error
	}{
		{"content", func(n *Node) error { return n.SetContent([]byte("hello")) }, 5, nil},
		{"empty content", func(n *Node) error { return n.SetContent(nil) }, 0, nil},
		{"max content", func(n *Node) error { return n.SetContent(make([]byte, MaxInlineContent)) }, MaxInlineContent, nil},
		{"too much content", func(n *Node) error { return n.SetContent(make([]byte, MaxInlineContent+1)) }, 0, ErrContentTooLarge},
		{"symlink", func(n *Node) error { return n.SetSymlink("../x") }, 4, nil},
		{"empty symlink", func(n *Node) error { return n.SetSymlink("") }, 0, ErrEmptySymlink},
		{"long symlink", func(n *Node) error { return n.SetSymlink(strings.Repeat("l", MaxPathLen+1)) }, 0, ErrPathTooLong},
	}
	for _, tt := range tests {
		n := New(ModeRegular)
		err := tt.set(n)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tt.desc, err, tt.want)
		}
		if n.Size != tt.wantSize {
			t.Errorf("%s: size %d, want %d", tt.desc, n.Size, tt.wantSize)
		}
	}
	data := []byte("abc")
	n := New(ModeRegular)
	n.SetContent(data)
	data[0] = 'X'
	if string(n.Content) != "abc" {
		t.Error("SetContent keeps the caller's slice")
	}
}

func TestClone(t *testing.T) {
	root := build(t, "d/f", "d/g", "h")
	f := root.LookupPath("d/f")
	f.SetContent([]byte("content"))
	f.Digest = []byte{1, 2, 3}
	f.SetXattr("user.x", []byte("v"))
	if err := root.Lookup("h").MakeHardlink(f); err != nil {
		t.Fatal(err)
	}
	c := root.Clone()
	cf := c.LookupPath("d/f")
	if cf == f || cf == nil || cf.Parent != c.Lookup("d") || cf.Path() != "/d/f" {
		t.Fatalf("clone shares or misplaces nodes: %p %p", cf, f)
	}
	if c.Lookup("h").LinkTo != cf {
		t.Error("hard link in the clone does not point into the clone")
	}
	cf.Content[0] = 'X'
	cf.Digest[0] = 9
	cf.Xattrs[0].Value[0] = 'w'
	if string(f.Content) != "content" || f.Digest[0] != 1 || string(f.Xattrs[0].Value) != "v" {
		t.Error("changing the clone changed the original")
	}
	if cf.XattrSpace() != f.XattrSpace() || cf.Nlink != 2 {
		t.Errorf("clone lost accounting: space %d/%d nlink %d", cf.XattrSpace(), f.XattrSpace(), cf.Nlink)
	}
	// A subtree clone keeps links to outside targets as they are.
	sub := root.Lookup("d")
	out := New(ModeRegular)
	root.AddChild("out", out)
	sub.Lookup("g").MakeHardlink(out)
	if sc := sub.Clone(); sc.Lookup("g").LinkTo != out {
		t.Error("link to a node outside the cloned subtree was changed")
	}
}

func TestTypePredicates(t *testing.T) {
	tests := []struct {
		n                  *Node
		dir, reg, whiteout bool
	}{
		{New(ModeDir | 0o755), true, false, false},
		{New(ModeRegular | 0o644), false, true, false},
		{New(ModeChar), false, false, true},
		{&Node{Mode: ModeChar, Rdev: 1}, false, false, false},
		{New(ModeBlock), false, false, false},
	}
	for i, tt := range tests {
		if tt.n.IsDir() != tt.dir || tt.n.IsRegular() != tt.reg || tt.n.IsWhiteout() != tt.whiteout {
			t.Errorf("case %d (mode %o rdev %d): dir %v reg %v whiteout %v", i, tt.n.Mode, tt.n.Rdev, tt.n.IsDir(), tt.n.IsRegular(), tt.n.IsWhiteout())
		}
	}
}
