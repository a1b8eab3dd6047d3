//go:build !purego

package fsverity

import "golang.org/x/sys/cpu"

// sha256x2 writes the SHA-256 digests of a and b to out[0] and out[1],
// two computations interleaved with the SHA extensions (see
// sha256x2_amd64.s). Use only when haveSHA256x2.
//
//go:noescape
func sha256x2(out *[2][32]byte, a, b *[BlockSize]byte, t *shaniTables)

// cpuidSHA reports whether the CPU has the SHA extensions.
func cpuidSHA() bool

// haveSHA256x2 tells whether sha256x2 can run here.
var haveSHA256x2 = cpu.X86.HasSSSE3 && cpu.X86.HasSSE41 && cpuidSHA()

// sum256x2 is sha256x2 with this package's tables.
func sum256x2(out *[2][32]byte, a, b *[BlockSize]byte) { sha256x2(out, a, b, &shani) }

// sha256blocks2 hashes n 64-byte blocks of a and n of b into the two
// states s holds (a's in s[0:8], b's in s[8:16], each in the order
// shaniTables.iv gives), with no padding: the core of SHA256Pair.
//
//go:noescape
func sha256blocks2(s *[16]uint32, a, b *byte, n int, t *shaniTables)

// sha256blocks1 is sha256blocks2 for one message alone (state s, in
// shaniTables.iv's order).
//
//go:noescape
func sha256blocks1(s *[8]uint32, p *byte, n int, t *shaniTables)
