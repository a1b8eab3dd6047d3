package fsverity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// sum256x2 gives crypto/sha256's digests, for blocks of every kind.
func TestSum256x2(t *testing.T) {
	if !haveSHA256x2 {
		t.Skip("no SHA extensions on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var a, b [BlockSize]byte
	for i := range 200 {
		switch i % 4 {
		case 0:
			a, b = [BlockSize]byte{}, [BlockSize]byte{}
		case 1:
			for k := range a {
				a[k], b[k] = byte(r.Uint32()), byte(r.Uint32())
			}
		case 2:
			b = a
		case 3:
			a[r.IntN(BlockSize)] ^= 1 << r.IntN(8)
		}
		var out [2][32]byte
		sum256x2(&out, &a, &b)
		if out[0] != sha256.Sum256(a[:]) || out[1] != sha256.Sum256(b[:]) {
			t.Fatalf("round %d: %x %x, want %x %x", i, out[0], out[1], sha256.Sum256(a[:]), sha256.Sum256(b[:]))
		}
	}
}

// The digest of any content is the same whether its data blocks are
// hashed several at a time or one at a time, with either algorithm.
func TestHasherPairsSame(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, alg := range []Algorithm{SHA256, SHA512} {
		for _, n := range []int{0, 1, 4095, 4096, 4097, 8192, 8193, 3 * 4096, 7*4096 + 5, 8 * 4096, 9*4096 + 1, 65 * 4096, 129 * 4096, 1 << 20, len(data)} {
			for _, chunk := range []int{1000, 4096, 8192, 5 * 4096, 128 << 10, n + 1} {
				several := New(alg)
				single := New(alg)
				single.noPairs = true
				for off := 0; off < n; off += chunk {
					several.Write(data[off:min(n, off+chunk)])
					single.Write(data[off:min(n, off+chunk)])
				}
				if p, s := several.Sum(nil), single.Sum(nil); !bytes.Equal(p, s) {
					t.Fatalf("%v, %d bytes in chunks of %d: %x several at a time, %x one at a time", alg, n, chunk, p, s)
				}
			}
			single := New(alg)
			single.noPairs = true
			single.Write(data[:n])
			par, err := DigestReaderAt(context.Background(), bytes.NewReader(data[:n]), int64(n), alg, 2)
			if s := single.Sum(nil); err != nil || !bytes.Equal(par, s) {
				t.Fatalf("%v, %d bytes: DigestReaderAt %x (%v), one block at a time %x", alg, n, par, err, s)
			}
		}
	}
}

func BenchmarkSum256x2(b *testing.B) {
	if !haveSHA256x2 {
		b.Skip("no SHA extensions")
	}
	var x, y [BlockSize]byte
	var out [2][32]byte
	b.SetBytes(2 * BlockSize)
	for b.Loop() {
		sum256x2(&out, &x, &y)
	}
}

func BenchmarkSum256One(b *testing.B) {
	var x [BlockSize]byte
	b.SetBytes(BlockSize)
	for b.Loop() {
		sha256.Sum256(x[:])
	}
}

func benchmarkHasher(b *testing.B, alg Algorithm, noPairs bool) {
	data := make([]byte, 1<<20)
	h := New(alg)
	h.noPairs = noPairs
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h.Reset()
		h.Write(data)
		h.Sum(nil)
	}
}

func BenchmarkHasherSeveral256(b *testing.B)    { benchmarkHasher(b, SHA256, false) }
func BenchmarkHasherOneAtATime256(b *testing.B) { benchmarkHasher(b, SHA256, true) }
func BenchmarkHasherSeveral512(b *testing.B)    { benchmarkHasher(b, SHA512, false) }
func BenchmarkHasherOneAtATime512(b *testing.B) { benchmarkHasher(b, SHA512, true) }
