//go:build linux

package fuse

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/tree"
)

// xattrTree is a small tree: a directory and a file with an object, and
// with value set, an xattr user.x on the file.
func xattrTree(t *testing.T, value string) (img, store string) {
	root := tree.New(tree.ModeDir | 0o755)
	sub := tree.New(tree.ModeDir | 0o755)
	must(t, root.AddChild("d", sub))
	data := []byte("some content that is not inlined, being longer than 64 bytes....")
	d := fsverity.Sum(data, fsverity.SHA256)
	obj := fsverity.Hex(d)[:2] + "/" + fsverity.Hex(d)[2:]
	f := regular(obj, data, true)
	if value != "" {
		must(t, f.SetXattr("user.x", []byte(value)))
	}
	must(t, sub.AddChild("f", f))
	return writeImage(t, root, map[string][]byte{obj: data})
}

// waitScanned waits until the server's scan of the image's xattrs is over
// (it found none) or a second has passed.
func waitScanned(srv *Server) bool {
	for range 100 {
		if srv.fsys.noXattrs.Load() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// On an image without xattrs, getxattr gets no round trip once the server
// knows it (the kernel answers EOPNOTSUPP itself); on an image with one,
// every query is answered, the value and "no data" alike.
func TestXattrsWithoutRoundTrips(t *testing.T) {
	img, store := xattrTree(t, "")
	srv, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{store}})
	if !waitScanned(srv) {
		t.Fatal("the server did not find that the image has no xattrs")
	}
	for _, p := range []string{dir, filepath.Join(dir, "d"), filepath.Join(dir, "d", "f")} {
		for range 2 {
			if _, err := unix.Lgetxattr(p, "security.selinux", make([]byte, 64)); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("%s: getxattr on an image without xattrs: %v, want EOPNOTSUPP", p, err)
			}
		}
		if n, err := unix.Llistxattr(p, make([]byte, 64)); n != 0 || err != nil {
			t.Errorf("%s: listxattr: %d bytes, %v", p, n, err)
		}
	}

	img, store = xattrTree(t, "value")
	srv, dir, _ = mountFUSE(t, img, mount.Options{Basedirs: []string{store}})
	if waitScanned(srv) {
		t.Fatal("the server found no xattrs in an image that has one")
	}
	f := filepath.Join(dir, "d", "f")
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(f, "user.x", buf); err != nil || string(buf[:n]) != "value" {
		t.Errorf("getxattr user.x: %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(f, "security.selinux", buf); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr of a missing xattr: %v, want ENODATA", err)
	}
}
