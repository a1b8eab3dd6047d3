package image_test

import (
	"bytes"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/image"
)

// FuzzDumpToImage builds an image from any dump the parser accepts, reads
// it back and writes it again: the two images must be identical (the
// property composefs-dump relies on), and nothing may panic.
func FuzzDumpToImage(f *testing.F) {
	f.Add([]byte("/ 4096 40755 2 0 0 0 0.0 - - -\n"), uint8(1))
	f.Add([]byte("/ 4096 40755 2 0 0 0 0.0 - - - user.a=b\n/f 100 100644 1 0 0 0 1.5 ab/cd - - trusted.overlay.x=1\n/w 0 20000 1 0 0 0 0.0 - - -\n"), uint8(1))
	f.Add([]byte("/ 4096 40755 2 0 0 0 0.0 - - -\n/a 5 100644 2 0 0 0 0.0 - hello -\n/b 5 @100644 2 0 0 0 0.0 /a - -\n/l 3 120777 1 0 0 0 0.0 abc - -\n"), uint8(0))
	for _, a := range []string{"special.dump", "longlink.dump", "bigfile-xattr.dump"} {
		for _, as := range loadAssets(f) {
			if as.name == a {
				f.Add(as.dump, uint8(1))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, version uint8) {
		root, err := dump.Parse(bytes.NewReader(data), dump.Options{})
		if err != nil {
			return
		}
		opts := image.Options{MinVersion: int(version % 2), MaxVersion: 1}
		var a bytes.Buffer
		if err := image.Write(&a, root, opts); err != nil {
			return // refused trees are fine; panics are not
		}
		v, err := image.ReadVersion(bytes.NewReader(a.Bytes()))
		if err != nil {
			t.Fatalf("reading the version of our own image: %v", err)
		}
		back, err := image.Read(bytes.NewReader(a.Bytes()), int64(a.Len()), image.ReadOptions{})
		if err != nil {
			t.Fatalf("reading our own image: %v", err)
		}
		var b bytes.Buffer
		if err := image.Write(&b, back, image.Options{MinVersion: v, MaxVersion: v}); err != nil {
			t.Fatalf("rewriting our own image: %v", err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("image -> tree -> image is not exact (%d vs %d bytes)", a.Len(), b.Len())
		}
	})
}
