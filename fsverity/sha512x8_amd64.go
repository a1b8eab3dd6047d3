//go:build !purego

package fsverity

import "golang.org/x/sys/cpu"

// sha512x8 leaves in state[w][i] word w of the SHA-512 state after
// hashing *msgs[i] (see sha512x8_amd64.s).
//
//go:noescape
func sha512x8(state *[8][8]uint64, msgs *[8]*[BlockSize]byte, t *sha512Tables)

// haveSHA512x8 tells whether sha512x8 can run here (AVX-512 F and BW,
// with the operating system saving the registers).
var haveSHA512x8 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW
