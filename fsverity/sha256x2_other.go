//go:build !amd64 || purego

package fsverity

// haveSHA256x2 tells whether sum256x2 can run here: only on amd64.
const haveSHA256x2 = false

func sum256x2(out *[2][32]byte, a, b *[BlockSize]byte) {
	panic("fsverity: sum256x2 without the SHA extensions")
}
