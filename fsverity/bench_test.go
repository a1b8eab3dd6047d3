package fsverity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"testing"
	"time"
)

const benchSize = 1 << 20

// BenchmarkDigest measures the streaming Hasher over a 1 MiB buffer, to be
// compared with BenchmarkSHA256 and BenchmarkSHA512, which hash the same
// buffer with plain crypto/sha256 and crypto/sha512.
func BenchmarkDigest(b *testing.B) {
	data := testData(benchSize)
	for _, alg := range algs {
		b.Run(alg.String(), func(b *testing.B) {
			h := New(alg)
			out := make([]byte, 0, MaxDigestSize)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				h.Write(data)
				out = h.Sum(out[:0])
			}
		})
	}
}

func benchPlain(b *testing.B, h hash.Hash) {
	data := testData(benchSize)
	out := make([]byte, 0, MaxDigestSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Write(data)
		out = h.Sum(out[:0])
	}
}

// BenchmarkSHA256 is plain crypto/sha256 over the buffer of BenchmarkDigest.
func BenchmarkSHA256(b *testing.B) { benchPlain(b, sha256.New()) }

// BenchmarkSHA512 is plain crypto/sha512 over the buffer of BenchmarkDigest.
func BenchmarkSHA512(b *testing.B) { benchPlain(b, sha512.New()) }

// BenchmarkDigestSmallWrites streams the 1 MiB buffer in 1000-byte writes,
// which forces the copying path.
func BenchmarkDigestSmallWrites(b *testing.B) {
	data := testData(benchSize)
	h := New(SHA256)
	out := make([]byte, 0, MaxDigestSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		for p := data; len(p) > 0; {
			n := min(len(p), 1000)
			h.Write(p[:n])
			p = p[n:]
		}
		out = h.Sum(out[:0])
	}
}

func benchWorkers() []int {
	if n := runtime.NumCPU(); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

// BenchmarkDigestFiles digests 16 files of 2 MiB (in the page cache after
// the first round) with one worker and with one per CPU.
func BenchmarkDigestFiles(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	const n, size = 16, 2 << 20
	data := testData(size)
	for i := range n {
		paths = append(paths, writeFile(b, dir, fmt.Sprint(i), data))
	}
	for _, w := range benchWorkers() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(n * size)
			for b.Loop() {
				err := DigestFiles(context.Background(), paths, SHA256, w, func(i int, d []byte, err error) {
					if err != nil {
						b.Error(err)
					}
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDigestReaderAt digests one 32 MiB in-memory "file" in parallel
// chunks, with one worker and with one per CPU.
func BenchmarkDigestReaderAt(b *testing.B) {
	data := testData(32 << 20)
	for _, w := range benchWorkers() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DigestReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), SHA256, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRatioToSHA256 alternates rounds of BenchmarkDigest/sha256 and
// BenchmarkSHA256 on the same buffer and reports the median of the
// per-round throughput ratios (fs-verity / plain SHA-256) as "ratio", which
// is less sensitive to load from elsewhere than comparing two separate
// benchmarks. fs-verity's structure caps it below 1: every 4096-byte block
// is a separate SHA-256 message (one extra padding block per 64), and the
// tree adds 1/128 more data.
func BenchmarkRatioToSHA256(b *testing.B) {
	data := testData(benchSize)
	h, p := New(SHA256), sha256.New()
	out := make([]byte, 0, MaxDigestSize)
	var ratios []float64
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		t0 := time.Now()
		h.Reset()
		h.Write(data)
		out = h.Sum(out[:0])
		t1 := time.Now()
		p.Reset()
		p.Write(data)
		out = p.Sum(out[:0])
		ratios = append(ratios, float64(time.Since(t1))/float64(t1.Sub(t0)))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}
