package testutil

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/gocfs/gocfs/erofs"
)

// SetRootMode rewrites, in place, the mode of the root inode of the image
// at path (a composefs or EROFS image): a corruption the kernel's EROFS
// mount does not notice until the root is looked at.
func SetRootMode(t testing.TB, path string, mode uint16) {
	t.Helper()
	b, img := readImage(t, path)
	in, err := img.Inode(img.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[in.Offset+4:], mode) // i_mode
	writeImage(t, path, b)
}

// BreakRootXattrs rewrites, in place, the value size of the first inline
// xattr of the root inode of the image at path so that it runs past the
// inode's xattr area: the image opens, and reading the root's xattrs
// fails.
func BreakRootXattrs(t testing.TB, path string) {
	t.Helper()
	b, img := readImage(t, path)
	in, err := img.Inode(img.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	xs, err := in.InlineXattrs()
	if err != nil || len(xs) == 0 {
		t.Fatalf("%s: the root has no inline xattrs to break (%v)", path, err)
	}
	binary.LittleEndian.PutUint16(b[xs[0].Offset+2:], 0xffff) // e_value_size
	writeImage(t, path, b)
}

// SetEntryNid rewrites, in place, the inode number of the root directory
// entry called name in the image at path: with a nid past the end, the
// kernel mounts the image and fails only when the entry is looked up.
func SetEntryNid(t testing.TB, path, name string, nid uint64) {
	t.Helper()
	b, img := readImage(t, path)
	off, err := entryOffset(img, name)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	binary.LittleEndian.PutUint64(b[off:], nid) // erofs_dirent.nid
	writeImage(t, path, b)
}

// entryOffset returns the offset in the image of the root directory entry
// called name.
func entryOffset(img *erofs.Image, name string) (int64, error) {
	root, err := img.Inode(img.RootNid())
	if err != nil {
		return 0, err
	}
	exts, err := root.Extents()
	if err != nil {
		return 0, err
	}
	found := int64(-1)
	err = root.ReadDirBlocks(func(off int64, ents []erofs.DirEntry, err error) error {
		for i, e := range ents {
			if e.Name != name {
				continue
			}
			for _, x := range exts {
				if off >= x.Logical && off < x.Logical+x.Length {
					found = x.Physical + off - x.Logical + int64(i)*erofs.DirentSize
				}
			}
		}
		return err
	})
	if err == nil && found < 0 {
		err = fmt.Errorf("no entry %q in the root directory", name)
	}
	return found, err
}

func readImage(t testing.TB, path string) ([]byte, *erofs.Image) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b, img
}

func writeImage(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
