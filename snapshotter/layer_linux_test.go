package snapshotter

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUpperLayer writes an upper directory as containerd's applier and
// overlayfs leave it (whiteouts as character devices 0/0, two of them
// hard links of one inode as overlayfs makes them, an opaque directory,
// overlayfs's private xattrs, a hard-linked file) as an OCI layer, and
// checks the archive member by member.
func TestUpperLayer(t *testing.T) {
	needRoot(t)
	up := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(up, "d/opq"), 0o755))
	must(os.WriteFile(filepath.Join(up, "d/f"), []byte("content of f"), 0o640))
	must(os.Link(filepath.Join(up, "d/f"), filepath.Join(up, "d/g")))
	must(unix.Mknod(filepath.Join(up, "d/gone"), unix.S_IFCHR, 0))
	must(os.Link(filepath.Join(up, "d/gone"), filepath.Join(up, "gone-too")))
	must(unix.Setxattr(filepath.Join(up, "d/opq"), "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Setxattr(filepath.Join(up, "d"), "trusted.overlay.origin", []byte("private"), 0))
	must(unix.Setxattr(filepath.Join(up, "d"), "user.kept", []byte("v"), 0))
	must(os.Symlink("f", filepath.Join(up, "d/s")))
	mt := time.Unix(1700000000, 123456789)
	must(os.Chtimes(filepath.Join(up, "d/f"), mt, mt))

	must(os.Chmod(up, 0o755))
	l, err := readUpper(context.Background(), up, rootAttrs{mode: 0o40000 | 0o755})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	must(l.write(&buf))
	type got struct {
		name   string
		typ    byte
		link   string
		xattrs map[string]string
	}
	var members []got
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		x := map[string]string{}
		for k, v := range h.PAXRecords {
			if len(k) > 13 && k[:13] == "SCHILY.xattr." {
				x[k[13:]] = v
			}
		}
		if h.Name == "d/f" && !h.ModTime.Equal(mt) {
			t.Errorf("d/f: time %v, want %v (nanoseconds kept)", h.ModTime, mt)
		}
		members = append(members, got{h.Name, h.Typeflag, h.Linkname, x})
	}
	want := []got{
		{"d/", tar.TypeDir, "", map[string]string{"user.kept": "v"}},
		{"d/f", tar.TypeReg, "", map[string]string{}},
		{"d/g", tar.TypeLink, "d/f", map[string]string{}},
		{"d/.wh.gone", tar.TypeReg, "", map[string]string{}},
		{"d/opq/", tar.TypeDir, "", map[string]string{}},
		{"d/opq/.wh..wh..opq", tar.TypeReg, "", map[string]string{}},
		{"d/s", tar.TypeSymlink, "f", map[string]string{}},
		{".wh.gone-too", tar.TypeReg, "", map[string]string{}},
	}
	if !slices.EqualFunc(members, want, func(a, b got) bool {
		return a.name == b.name && a.typ == b.typ && a.link == b.link && len(a.xattrs) == len(b.xattrs) && a.xattrs["user.kept"] == b.xattrs["user.kept"]
	}) {
		t.Errorf("members:\n%+v\nwant:\n%+v", members, want)
	}
}

// TestUpperLayerRoot: the layer has a root member only when the upper
// directory's root differs from the root below it in mode or owner.
func TestUpperLayerRoot(t *testing.T) {
	needRoot(t)
	up := t.TempDir()
	if err := os.Chmod(up, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lower rootAttrs
		want  bool
	}{
		{rootAttrs{mode: 0o40000 | 0o750}, false},
		{rootAttrs{mode: 0o40000 | 0o755}, true},
		{rootAttrs{mode: 0o40000 | 0o750, uid: 1}, true},
	} {
		l, err := readUpper(context.Background(), up, tc.lower)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := l.write(&buf); err != nil {
			t.Fatal(err)
		}
		h, err := tar.NewReader(&buf).Next()
		if got := err == nil && h.Name == "./" && h.Mode == 0o750; got != tc.want {
			t.Errorf("lower %+v: a root member %v (%v), want %v", tc.lower, got, err, tc.want)
		}
	}
}
