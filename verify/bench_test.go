package verify_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/assets"
	"github.com/gocfs/gocfs/verify"
)

// BenchmarkImage checks the image of the largest reference dump.
func BenchmarkImage(b *testing.B) {
	f, err := os.Open(assets.Dir(b) + "/config.dump.gz")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	root, err := dump.Parse(io.Reader(zr), dump.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var img bytes.Buffer
	if err := image.Write(&img, root, image.DefaultOptions); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(img.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := verify.Image(bytes.NewReader(img.Bytes()), int64(img.Len()), verify.Options{})
		if err != nil || !r.OK {
			b.Fatal(err, r.Problems)
		}
	}
}
