//go:build !amd64 || purego

package fsverity

// haveSHA256x2 tells whether sum256x2 can run here: only on amd64.
const haveSHA256x2 = false

func sum256x2(out *[2][32]byte, a, b *[BlockSize]byte) {
	panic("fsverity: sum256x2 without the SHA extensions")
}

func sha256blocks1(s *[8]uint32, p *byte, n int, t *shaniTables) {
	panic("fsverity: sha256blocks1 without the SHA extensions")
}

func sha256blocks2(s *[16]uint32, a, b *byte, n int, t *shaniTables) {
	panic("fsverity: sha256blocks2 without the SHA extensions")
}

// haveSHA512x8 tells whether sum512x8's assembly can run here: only on
// amd64.
const haveSHA512x8 = false

func sha512x8(state *[8][8]uint64, msgs *[8]*[BlockSize]byte, t *sha512Tables) {
	panic("fsverity: sha512x8 without AVX-512")
}
