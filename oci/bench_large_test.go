package oci

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
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
// registry into a new repository; with GOCFS_BENCH_MBPS set, through a
// proxy that lets that many MB/s through (a network slower than the
// import).
func BenchmarkPullLarge(b *testing.B) {
	reg := startRegistry(b)
	img := testImage(b, largeLayers())
	ref := reg.push(img, "gocfs/large:v1")
	if rate, _ := strconv.Atoi(os.Getenv("GOCFS_BENCH_MBPS")); rate > 0 {
		ref = newRateProxy(b, reg.addr, rate<<20).addr() + "/gocfs/large:v1"
	}
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

// rateProxy forwards connections to target, letting through at most rate
// bytes a second from it (all connections together).
type rateProxy struct {
	ln     net.Listener
	target string
	tokens chan struct{} // one per 64 KiB
}

func newRateProxy(tb testing.TB, target string, rate int) *rateProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &rateProxy{ln: ln, target: target, tokens: make(chan struct{}, 16)}
	done := make(chan struct{})
	tb.Cleanup(func() { close(done); ln.Close() })
	go func() {
		tick := time.NewTicker(time.Second * (64 << 10) / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				select {
				case p.tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	go p.serve()
	return p
}

func (p *rateProxy) addr() string { return p.ln.Addr().String() }

func (p *rateProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(u, c); u.Close() }()
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				<-p.tokens
				k, err := u.Read(buf)
				if k > 0 {
					if _, err := c.Write(buf[:k]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
