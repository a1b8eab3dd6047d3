package image_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/tree"
)

// BenchmarkWrite writes the image of the largest reference dump.
func BenchmarkWrite(b *testing.B) {
	best, root := largestAsset(b)
	n := 0
	root.Walk(func(string, *tree.Node) error { n++; return nil })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := image.Write(io.Discard, root, best.opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "inodes/s")
}

// BenchmarkWriteDigests writes the image of the largest reference dump
// with an fs-verity digest on every file in the store, so that each gets
// a metacopy value and a redirect.
func BenchmarkWriteDigests(b *testing.B) {
	best, root := largestAsset(b)
	n := 0
	root.Walk(func(_ string, f *tree.Node) error {
		if f.IsRegular() && f.Payload != "" {
			f.Digest = fsverity.Sum([]byte(f.Payload), fsverity.SHA256)
			n++
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := image.Write(io.Discard, root, best.opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "digests/s")
}

// BenchmarkParse parses the largest reference dump.
func BenchmarkParse(b *testing.B) {
	var best []byte
	for _, a := range loadAssets(b) {
		if len(a.dump) > len(best) {
			best = a.dump
		}
	}
	b.SetBytes(int64(len(best)))
	for i := 0; i < b.N; i++ {
		if _, err := dump.Parse(bytes.NewReader(best), dump.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads back the image of the largest reference dump.
func BenchmarkRead(b *testing.B) {
	img := largestImage(b)
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// largestImage returns the image of the largest reference dump with a
// known digest.
func largestImage(b *testing.B) []byte {
	best, root := largestAsset(b)
	var buf bytes.Buffer
	if err := image.Write(&buf, root, best.opts); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// largestAsset returns the largest reference dump that has a checksum, and
// its tree.
func largestAsset(b *testing.B) (asset, *tree.Node) {
	b.Helper()
	var best asset
	for _, a := range loadAssets(b) {
		if len(a.dump) > len(best.dump) && a.hasHash {
			best = a
		}
	}
	root, err := dump.Parse(bytes.NewReader(best.dump), dump.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return best, root
}
