package oci

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// countProxy forwards connections to target and counts the bytes that
// come back from it (what a pull transfers).
type countProxy struct {
	ln     net.Listener
	target string
	n      atomic.Int64
}

func newCountProxy(tb testing.TB, target string) *countProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &countProxy{ln: ln, target: target}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(u, c); u.Close() }()
			go func() {
				io.Copy(proxyCounter{c, &p.n}, u)
				c.Close()
			}()
		}
	}()
	return p
}

func (p *countProxy) addr() string { return p.ln.Addr().String() }

// proxyCounter counts what it writes to w.
type proxyCounter struct {
	w io.Writer
	n *atomic.Int64
}

func (c proxyCounter) Write(b []byte) (int, error) {
	k, err := c.w.Write(b)
	c.n.Add(int64(k))
	return k, err
}

// chunkedBenchLayers are two layers of about mb MB together, most files
// text, a few larger binaries; changed replaces every 100th file's
// content (1% of the files, none of the binaries) with other content of
// the same size.
func chunkedBenchLayers(mb int, changed bool) [][]member {
	var layers [][]member
	for l := range 2 {
		var ms []member
		for i, total := 0, 0; total < mb<<19; i++ {
			seed := uint64(l)<<32 + uint64(i)
			if changed && i%100 == 7 {
				seed += 1 << 40
			}
			var data []byte
			if i%40 == 0 {
				data = randBytes(seed, 100<<10+(i*7919)%(1<<20))
			} else {
				data = textBytes(seed, 1000+(i*104729)%60000)
			}
			ms = append(ms, fileM(fmt.Sprintf("usr/l%d/d%02d/f%05d", l, i%50, i), 0o644, data))
			total += len(data)
		}
		layers = append(layers, ms)
	}
	return layers
}

// BenchmarkChunkedPullAfter pulls a zstd:chunked image A, then B, whose
// files differ from A's in 1% of the files, through a proxy that counts
// the bytes, and prints what pulling B transferred against B's compressed
// size (goal: at most 5%). GOCFS_BENCH_CHUNKED_MB sizes the images (default
// 100).
func BenchmarkChunkedPullAfter(b *testing.B) {
	requireRoot(b)
	mb, _ := strconv.Atoi(os.Getenv("GOCFS_BENCH_CHUNKED_MB"))
	if mb <= 0 {
		mb = 100
	}
	reg := startRegistry(b)
	pushChunked(b, reg, chunkedBenchLayers(mb, false), "gocfs/a:v1")
	refB := pushChunked(b, reg, chunkedBenchLayers(mb, true), "gocfs/b:v1")
	m := must(must(remote.Image(must(name.ParseReference(refB)))).Manifest())
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	proxy := newCountProxy(b, reg.addr)
	b.ResetTimer()
	for range b.N {
		r := newTestRepo(b)
		if _, err := Pull(context.Background(), r, proxy.addr()+"/gocfs/a:v1", PullOptions{Name: "a"}); err != nil {
			b.Fatal(err)
		}
		before := proxy.n.Load()
		res, err := Pull(context.Background(), r, proxy.addr()+"/gocfs/b:v1", PullOptions{Name: "b"})
		if err != nil {
			b.Fatal(err)
		}
		got := proxy.n.Load() - before
		for _, l := range res.Layers {
			if !l.Partial {
				b.Fatalf("layer %s of B pulled whole", l.DiffID)
			}
		}
		fmt.Printf("zstd:chunked: B (1%% of its files differ from A's) after A: %d bytes through the proxy, B is %d bytes compressed: %.2f%% (goal <= 5%%)\n",
			got, size, 100*float64(got)/float64(size))
		b.ReportMetric(100*float64(got)/float64(size), "%transferred")
	}
}
