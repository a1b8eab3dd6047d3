package fsverity

import (
	"crypto/sha512"
	"math/big"
	"math/rand/v2"
	"testing"
)

// sum512x8 gives crypto/sha512's digests, for blocks of every kind, in
// every lane.
func TestSum512x8(t *testing.T) {
	if !haveSHA512x8 {
		t.Skip("no AVX-512 on this CPU")
	}
	r := rand.New(rand.NewPCG(5, 6))
	var blocks [8][BlockSize]byte
	var ptrs [8]*[BlockSize]byte
	for i := range ptrs {
		ptrs[i] = &blocks[i]
	}
	for round := range 40 {
		for i := range blocks {
			switch (round + i) % 4 {
			case 0:
				blocks[i] = [BlockSize]byte{}
			case 1:
				for k := range blocks[i] {
					blocks[i][k] = byte(r.Uint32())
				}
			case 2:
				blocks[i] = blocks[(i+1)%8]
			case 3:
				blocks[i][r.IntN(BlockSize)] ^= 1 << r.IntN(8)
			}
		}
		var out [8][64]byte
		sum512x8(&out, &ptrs)
		for i := range out {
			if want := sha512.Sum512(blocks[i][:]); out[i] != want {
				t.Fatalf("round %d lane %d: %x, want %x", round, i, out[i], want)
			}
		}
	}
}

// The round constants are the first 64 bits of the fractional parts of
// the cube roots of the first 80 primes.
func TestSHA512Constants(t *testing.T) {
	p := int64(1)
	for i, k := range sha512K {
		for p++; !big.NewInt(p).ProbablyPrime(0); p++ {
		}
		// floor(cbrt(p) * 2^64) mod 2^64: the integer cube root of p * 2^192.
		x := new(big.Int).Lsh(big.NewInt(p), 192)
		y := new(big.Int).Lsh(big.NewInt(1), uint(x.BitLen()/3+1))
		for {
			// Newton's step for the cube root, from above.
			y2 := new(big.Int).Mul(y, y)
			next := new(big.Int).Quo(x, y2)
			next.Add(next, new(big.Int).Lsh(y, 1))
			next.Quo(next, big.NewInt(3))
			if next.Cmp(y) >= 0 {
				break
			}
			y = next
		}
		if got := y.Uint64(); got != k {
			t.Fatalf("K[%d] = %#x, the cube root of %d gives %#x", i, k, p, got)
		}
	}
}

func BenchmarkSum512x8(b *testing.B) {
	if !haveSHA512x8 {
		b.Skip("no AVX-512")
	}
	var blocks [8][BlockSize]byte
	var ptrs [8]*[BlockSize]byte
	for i := range ptrs {
		ptrs[i] = &blocks[i]
	}
	var out [8][64]byte
	b.SetBytes(8 * BlockSize)
	for b.Loop() {
		sum512x8(&out, &ptrs)
	}
}

func BenchmarkSum512One(b *testing.B) {
	var x [BlockSize]byte
	b.SetBytes(BlockSize)
	for b.Loop() {
		sha512.Sum512(x[:])
	}
}
