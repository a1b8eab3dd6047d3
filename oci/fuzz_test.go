package oci

import (
	"bytes"
	"io"
	"testing"

	"github.com/gocfs/gocfs/image"
)

// FuzzLayers imports two arbitrary byte strings as tar layers, as a pull
// from an untrusted registry would, merges them and writes the image.
// Errors are fine; panics and hangs are not.
func FuzzLayers(f *testing.F) {
	f.Add(makeTar(f, []member{dirM("a/", 0o755), fileM("a/f", 0o644, bytes.Repeat([]byte("x"), 100))}),
		makeTar(f, []member{whiteoutM("a/f"), linkM("b", "a"), symlinkM("c", "../../etc")}))
	f.Add(makeTar(f, []member{fileM("x", 0o644, []byte("small"))}), []byte("not a tar"))
	r := newTestRepo(f)
	f.Fuzz(func(t *testing.T, l1, l2 []byte) {
		fs := newRootfs(Rules{})
		for _, l := range [][]byte{l1, l2} {
			objs := r.NewObjectWriter()
			entries, err := newImporter(r.Algorithm(), objs).importTar(bytes.NewReader(l))
			objs.Abort()
			if err != nil {
				return
			}
			if err := fs.apply(entries); err != nil {
				return
			}
		}
		root, err := fs.finish(r.Algorithm())
		if err != nil {
			return
		}
		_ = image.Write(io.Discard, root, image.DefaultOptions)
	})
}
