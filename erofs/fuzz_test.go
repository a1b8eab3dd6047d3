package erofs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gocfs/gocfs/erofs"
)

// FuzzFS opens any input as an image and reads everything through the
// io/fs view. It must not panic, and fail only with errors wrapping
// fs.ErrInvalid (or the io/fs ones for paths). Seeds are the test images
// (and testdata/fuzz/FuzzFS).
func FuzzFS(f *testing.F) {
	imgs, _ := filepath.Glob("testdata/*.img")
	more, _ := filepath.Glob("../image/testdata/read/*.img")
	for _, p := range append(imgs, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		fsys := img.FS("")
		budget := int64(16 * len(b))
		buf := make([]byte, 8192)
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fsys.Xattrs(p)
			if d.Type() == fs.ModeSymlink {
				fsys.ReadLink(p)
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fl, err := fsys.Open(p)
			if err != nil {
				return nil
			}
			defer fl.Close()
			for budget > 0 {
				n, err := fl.Read(buf)
				budget -= int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, fs.ErrInvalid) {
						t.Fatalf("read %s: %v", p, err)
					}
					break
				}
			}
			return nil
		})
	})
}
