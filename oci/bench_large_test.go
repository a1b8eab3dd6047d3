package oci

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// largeLayers are about 200 MB of layer blobs: 160 random files of 1 MiB
// (incompressible) and 2000 text files (compressible) over three layers.
func largeLayers() [][]member {
	var a, b, c []member
	for i := range 80 {
		a = append(a, fileM(fmt.Sprintf("usr/lib/a-%03d", i), 0o644, randBytes(uint64(i), 1<<20)))
	}
	for i := range 2000 {
		b = append(b, fileM(fmt.Sprintf("usr/share/t%d/%05d", i%40, i), 0o644, textBytes(uint64(i), 1000+(i*7919)%60000)))
	}
	for i := range 80 {
		c = append(c, fileM(fmt.Sprintf("opt/c-%03d", i), 0o644, randBytes(uint64(500+i), 1<<20)))
	}
	return [][]member{a, b, c}
}

// BenchmarkPullLarge times pulling a ~200 MB image from a loopback
// registry into a new repository.
func BenchmarkPullLarge(b *testing.B) {
	reg := startRegistry(b)
	img := testImage(b, largeLayers())
	ref := reg.push(img, "gocfs/large:v1")
	ls, _ := img.Layers()
	var blob int64
	for _, l := range ls {
		n, _ := l.Size()
		blob += n
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newTestRepo(b)
		b.StartTimer()
		start := time.Now()
		if _, err := Pull(context.Background(), r, ref, PullOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(blob)/1e6, "blob-MB")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/pull")
}
