package oci

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// benchLayers are about 100 MiB of layer data: many small and medium text
// files (compressible, as most of an image is), and big random ones.
func benchLayers() [][]member {
	var small, big, mixed []member
	for i := range 1500 {
		small = append(small, fileM(fmt.Sprintf("usr/share/f%d/file-%05d", i%50, i), 0o644, textBytes(uint64(i), 100+(i*7919)%40000)))
	}
	for i := range 40 {
		big = append(big, fileM(fmt.Sprintf("usr/lib/blob-%02d", i), 0o644, randBytes(uint64(i), 1<<20)))
	}
	for i := range 600 {
		n := 10 + (i*104729)%100000
		if i%3 == 0 {
			mixed = append(mixed, fileM(fmt.Sprintf("opt/m/%04d", i), 0o644, randBytes(uint64(1000+i), n)))
		} else {
			mixed = append(mixed, fileM(fmt.Sprintf("opt/m/%04d", i), 0o644, textBytes(uint64(1000+i), n)))
		}
	}
	return [][]member{small, big, mixed}
}

// BenchmarkPull compares pulling an image into a repository (download,
// decompression, hashing, objects, split streams, the composefs image,
// syncs) with downloading its layer blobs from the same loopback registry
// and discarding them. It reports both rates, in MB/s of layer blobs, and
// their ratio (pull-vs-download: 1 would be free import).
func BenchmarkPull(b *testing.B) {
	reg := startRegistry(b)
	img := testImage(b, benchLayers())
	ref := reg.push(img, "gocfs/bench:v1")
	r0, _ := name.ParseReference(ref)
	rimg, err := remote.Image(r0)
	if err != nil {
		b.Fatal(err)
	}
	layers, _ := rimg.Layers()
	var blobBytes, tarBytes int64
	for _, l := range layers {
		n, _ := l.Size()
		blobBytes += n
	}
	var download, pull time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
		download += time.Since(start)

		b.StopTimer()
		r := newTestRepo(b)
		b.StartTimer()
		start = time.Now()
		res, err := Pull(context.Background(), r, ref, PullOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pull += time.Since(start)
		if i == 0 {
			for _, l := range layers {
				id, _ := l.DiffID()
				cw := &countingWriter{}
				if err := WriteLayer(r, id.String(), cw); err != nil {
					b.Fatal(err)
				}
				tarBytes += cw.n
			}
			_ = res
		}
	}
	mb := float64(blobBytes) * float64(b.N) / 1e6
	b.ReportMetric(mb/download.Seconds(), "download-MB/s")
	b.ReportMetric(mb/pull.Seconds(), "pull-MB/s")
	b.ReportMetric(float64(tarBytes)*float64(b.N)/1e6/pull.Seconds(), "pull-tar-MB/s")
	b.ReportMetric(download.Seconds()/pull.Seconds(), "pull-vs-download")
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
