package fsverity

import (
	"encoding/binary"
	"math/bits"
)

// sha512Tables are the constants sha512x8 reads, in this layout (its
// assembly uses the offsets): the round constants; the round constants
// plus the message schedule of the padding block every 4096-byte message
// ends with; the initial state; the VPSHUFB mask that byte-swaps 64-bit
// words; the size of a message block.
type sha512Tables struct {
	k      [80]uint64
	pad    [80]uint64
	iv     [8]uint64
	swap   [64]byte
	stride uint64
}

var sha512T = newSHA512Tables()

// sha512K are SHA-512's round constants (FIPS 180-4, 4.2.3): the first 64
// bits of the fractional parts of the cube roots of the first 80 primes
// (TestSHA512Constants computes them).
var sha512K = [80]uint64{
	0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
	0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
	0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
	0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
	0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
	0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
	0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
	0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
	0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
	0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
	0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
	0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
	0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
	0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
	0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
	0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
	0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
	0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
	0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
	0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
}

func newSHA512Tables() (t sha512Tables) {
	t.k = sha512K
	// The padding block of a 4096-byte message: a 1 bit, zeros, and the
	// message's length in bits (32768) in the last word.
	var w [80]uint64
	w[0], w[15] = 1<<63, BlockSize*8
	for i := 16; i < 80; i++ {
		s0 := bits.RotateLeft64(w[i-15], -1) ^ bits.RotateLeft64(w[i-15], -8) ^ w[i-15]>>7
		s1 := bits.RotateLeft64(w[i-2], -19) ^ bits.RotateLeft64(w[i-2], -61) ^ w[i-2]>>6
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	for i := range w {
		t.pad[i] = sha512K[i] + w[i]
	}
	t.iv = [8]uint64{
		0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
		0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
	}
	for lane := 0; lane < 64; lane += 16 {
		for i := range 16 {
			t.swap[lane+i] = byte(i&^7 | 7 - i&7)
		}
	}
	t.stride = 128
	return t
}

// sum512x8 writes the SHA-512 digests of the eight blocks to out. Use
// only when haveSHA512x8.
func sum512x8(out *[8][64]byte, blocks *[8]*[BlockSize]byte) {
	var state [8][8]uint64
	sha512x8(&state, blocks, &sha512T)
	for lane := range out {
		for w := range 8 {
			binary.BigEndian.PutUint64(out[lane][8*w:], state[w][lane])
		}
	}
}
