package testutil

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gocfs/gocfs/erofs"
)

// PatchXattr replaces, in the image img, the value of the inline xattr
// name of the file at path (below the root, "/a/b") with value, whose
// entry must round to the same 4-byte-aligned size as the old one's: a way
// to make images no writer makes (a redirect of "/", a malformed metacopy)
// for tests of the readers.
func PatchXattr(t testing.TB, img []byte, path, name string, value []byte) {
	t.Helper()
	im, err := erofs.Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	in, err := im.FS("").Inode(path[1:])
	if err != nil {
		t.Fatal(err)
	}
	xs, err := in.InlineXattrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.FullName() != name {
			continue
		}
		start := x.Offset + erofs.XattrEntrySize + int64(len(x.Name))
		padded := func(n int) int { return (erofs.XattrEntrySize + len(x.Name) + n + 3) &^ 3 }
		if padded(len(value)) != padded(len(x.Value)) {
			t.Fatalf("PatchXattr: a %d-byte value changes the size of %s's entry (%d bytes)", len(value), name, padded(len(x.Value)))
		}
		room := padded(len(x.Value)) - erofs.XattrEntrySize - len(x.Name)
		binary.LittleEndian.PutUint16(img[x.Offset+2:], uint16(len(value)))
		clear(img[start : start+int64(room)])
		copy(img[start:], value)
		return
	}
	t.Fatalf("PatchXattr: %s has no inline %s", path, name)
}

// PatchDirent makes the entry name of directory dirNid in the image img
// point to inode nid instead: a way to make directory hard links and
// cycles.
func PatchDirent(t testing.TB, img []byte, dirNid uint64, name string, nid uint64) {
	t.Helper()
	im, err := erofs.Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := im.Inode(dirNid)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := dir.Extents()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range exts {
		for off := int64(0); off < x.Length; off += erofs.BlockSize {
			start := x.Physical + off
			blk := img[start : start+min(erofs.BlockSize, x.Length-off)]
			ents, err := erofs.ParseDirBlock(blk)
			if err != nil {
				t.Fatal(err)
			}
			for i, de := range ents {
				if de.Name == name {
					binary.LittleEndian.PutUint64(blk[i*erofs.DirentSize:], nid)
					return
				}
			}
		}
	}
	t.Fatalf("PatchDirent: no entry %q in directory %d", name, dirNid)
}
