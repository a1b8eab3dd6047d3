package fsverity

import "math/bits"

// shaniTables are the constants sha256x2 reads, in this layout (its
// assembly uses the offsets): the round constants; the round constants
// plus the message schedule of the padding block every 4096-byte message
// ends with; the PSHUFB mask that byte-swaps words; the initial state,
// in the order the SHA extensions keep it (ABEF, CDGH, low word first).
type shaniTables struct {
	k    [64]uint32
	pad  [64]uint32
	flip [4]uint32
	iv   [8]uint32
}

var shani = newShaniTables()

// sha256K are SHA-256's round constants (FIPS 180-4, 4.2.2).
var sha256K = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

func newShaniTables() (t shaniTables) {
	t.k = sha256K
	// The padding block of a 4096-byte message: a 1 bit, zeros, and the
	// message's length in bits (32768) in the last word.
	var w [64]uint32
	w[0], w[15] = 0x80000000, BlockSize*8
	for i := 16; i < 64; i++ {
		s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
		s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	for i := range w {
		t.pad[i] = sha256K[i] + w[i]
	}
	t.flip = [4]uint32{0x00010203, 0x04050607, 0x08090a0b, 0x0c0d0e0f}
	// H0-H7 are a-h; the state registers hold F E B A and H G D C.
	const a, b, c, d, e, f, g, h = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
	t.iv = [8]uint32{f, e, b, a, h, g, d, c}
	return t
}
