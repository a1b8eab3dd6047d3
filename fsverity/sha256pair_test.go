package fsverity

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"math/rand/v2"
	"testing"
)

// SHA256Pair gives crypto/sha256's digests of both streams, whatever the
// pieces they are written in, checked after every write; with the SHA
// extensions and without.
func TestSHA256Pair(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		if !fallback && !haveSHA256x2 {
			t.Log("no SHA extensions on this CPU: the two-lane code is not tested")
			continue
		}
		r := rand.New(rand.NewPCG(3, 4))
		p := NewSHA256Pair()
		if fallback {
			p.h = [2]hash.Hash{sha256.New(), sha256.New()}
		}
		for round := range 40 {
			p.Reset()
			var all [2][]byte
			for range 1 + r.IntN(30) {
				var piece [2][]byte
				for i := range piece {
					piece[i] = randomPiece(r)
					all[i] = append(all[i], piece[i]...)
				}
				p.Write(piece[0], piece[1])
				for i := range all {
					want := sha256.Sum256(all[i])
					if got := p.Sum(i, nil); !bytes.Equal(got, want[:]) {
						t.Fatalf("fallback %v, round %d, stream %d after %d bytes: %x, want %x", fallback, round, i, len(all[i]), got, want)
					}
				}
			}
		}
	}
}

// randomPiece returns a piece of a stream: often empty, a few bytes, a
// block or so, or a few hundred KiB, of random or zero bytes.
func randomPiece(r *rand.Rand) []byte {
	var n int
	switch r.IntN(6) {
	case 0:
		n = 0
	case 1:
		n = r.IntN(8)
	case 2:
		n = 56 + r.IntN(16)
	case 3:
		n = 64 * (1 + r.IntN(4))
	default:
		n = r.IntN(300 << 10)
	}
	b := make([]byte, n)
	if r.IntN(4) > 0 {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

func BenchmarkSHA256Pair(b *testing.B) {
	x := make([]byte, 256<<10)
	y := make([]byte, 190<<10)
	b.Run("pair", func(b *testing.B) {
		p := NewSHA256Pair()
		b.SetBytes(int64(len(x) + len(y)))
		for b.Loop() {
			p.Write(y, x)
		}
	})
	b.Run("crypto/sha256", func(b *testing.B) {
		h1, h2 := sha256.New(), sha256.New()
		b.SetBytes(int64(len(x) + len(y)))
		for b.Loop() {
			h1.Write(y)
			h2.Write(x)
		}
	})
}
