package testutil

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/gocfs/gocfs/erofs"
)

// PatchFile applies patch (PatchDirent, PatchXattr, BreakRootXattrs…) to
// the image file at path, in place.
func PatchFile(t testing.TB, path string, patch func(img []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// SetEntryNid makes the root directory entry name of the image file at
// path point to inode nid (PatchDirent on the root): with a nid past the
// end of the image, the kernel mounts it and fails only when the entry is
// looked up.
func SetEntryNid(t testing.TB, path, name string, nid uint64) {
	t.Helper()
	PatchFile(t, path, func(img []byte) {
		PatchDirent(t, img, openImage(t, img).RootNid(), name, nid)
	})
}

// BreakRootXattrs sets the value size of the first inline xattr of the
// root inode of the image img so that it runs past the inode's xattr
// area: the image opens, and reading the root's xattrs fails.
func BreakRootXattrs(t testing.TB, img []byte) {
	t.Helper()
	im := openImage(t, img)
	in, err := im.Inode(im.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	xs, err := in.InlineXattrs()
	if err != nil || len(xs) == 0 {
		t.Fatalf("BreakRootXattrs: the root has no inline xattrs to break (%v)", err)
	}
	binary.LittleEndian.PutUint16(img[xs[0].Offset+2:], 0xffff) // e_value_size
}

func openImage(t testing.TB, img []byte) *erofs.Image {
	t.Helper()
	im, err := erofs.Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return im
}
