package image_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gocfs/gocfs/image"
)

// FuzzRead checks that Read survives any input: no panic, errors that
// wrap fs.ErrInvalid, and a tree that can be written again. Seeds are
// the golden images (and testdata/fuzz/FuzzRead).
func FuzzRead(f *testing.F) {
	imgs, _ := filepath.Glob("testdata/read/*.img")
	for _, p := range imgs {
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
		root, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{})
		if err != nil {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("error not wrapping fs.ErrInvalid: %v", err)
			}
			return
		}
		rdDump(t, root)
		v, err := image.ReadVersion(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		// The tree may break the writer's rules (it is checked); it must
		// not panic.
		_ = image.Write(&out, root, image.Options{MinVersion: v, MaxVersion: max(v, image.MaxVersion)})
	})
}
