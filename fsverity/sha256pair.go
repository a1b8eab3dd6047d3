package fsverity

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"unsafe"
)

// SHA256Pair computes the plain SHA-256 digests of two byte streams at
// once (not fs-verity digests): where the CPU has the SHA extensions, the
// blocks that the two streams have at the same time are hashed together
// by the two-lane code that hashes fs-verity's data blocks, which takes
// little longer than hashing one stream alone. A pull uses it for a
// layer's compressed bytes (the blob's digest) and its uncompressed ones
// (the diff ID), which come out of the decompressor together.
//
// Elsewhere it hashes with crypto/sha256. The zero value is not usable;
// make one with NewSHA256Pair. It is not safe for concurrent use.
type SHA256Pair struct {
	st   [16]uint32   // the two states, as sha256blocks2 keeps them
	buf  [2][64]byte  // each stream's partial block
	nbuf [2]int       // bytes in buf
	n    [2]uint64    // bytes written to each stream
	h    [2]hash.Hash // without the SHA extensions
}

// NewSHA256Pair returns a pair of SHA-256 computations of empty streams.
func NewSHA256Pair() *SHA256Pair {
	p := &SHA256Pair{}
	if !haveSHA256x2 {
		p.h = [2]hash.Hash{sha256.New(), sha256.New()}
	}
	p.Reset()
	return p
}

// Reset starts both streams again, empty.
func (p *SHA256Pair) Reset() {
	copy(p.st[0:8], shani.iv[:])
	copy(p.st[8:16], shani.iv[:])
	p.nbuf, p.n = [2]int{}, [2]uint64{}
	for _, h := range p.h {
		if h != nil {
			h.Reset()
		}
	}
}

// Write adds a to the first stream and b to the second.
func (p *SHA256Pair) Write(a, b []byte) {
	p.n[0] += uint64(len(a))
	p.n[1] += uint64(len(b))
	if p.h[0] != nil {
		p.h[0].Write(a)
		p.h[1].Write(b)
		return
	}
	a, b = p.fill(0, a), p.fill(1, b)
	// A partial block that is not full now has used up its stream's
	// slice. Full ones are hashed first, with a block of the other
	// stream where there is one.
	switch full0, full1 := p.nbuf[0] == 64, p.nbuf[1] == 64; {
	case full0 && full1:
		p.blocks(p.buf[0][:], p.buf[1][:], 1)
		p.nbuf = [2]int{}
	case full0 && p.nbuf[1] == 0 && len(b) >= 64:
		p.blocks(p.buf[0][:], b, 1)
		b, p.nbuf[0] = b[64:], 0
	case full1 && p.nbuf[0] == 0 && len(a) >= 64:
		p.blocks(a, p.buf[1][:], 1)
		a, p.nbuf[1] = a[64:], 0
	}
	for i := range p.nbuf {
		if p.nbuf[i] == 64 {
			p.single(i, p.buf[i][:], 1)
			p.nbuf[i] = 0
		}
	}
	// Whole blocks of both, straight from the slices, then the rest of
	// the longer one alone.
	k := min(len(a), len(b)) / 64
	p.blocks(a, b, k)
	a, b = a[k*64:], b[k*64:]
	for i, s := range [][]byte{a, b} {
		if len(s) == 0 {
			continue
		}
		k := len(s) / 64
		p.single(i, s, k)
		p.nbuf[i] = copy(p.buf[i][:], s[k*64:])
	}
}

// fill tops up stream i's partial block from s and returns what is left
// of s; a partial block that becomes full stays in the buffer.
func (p *SHA256Pair) fill(i int, s []byte) []byte {
	if p.nbuf[i] == 0 {
		return s
	}
	c := copy(p.buf[i][p.nbuf[i]:], s)
	p.nbuf[i] += c
	return s[c:]
}

// blocks hashes k whole blocks of a into the first state and k of b into
// the second.
func (p *SHA256Pair) blocks(a, b []byte, k int) {
	if k > 0 {
		sha256blocks2(&p.st, unsafe.SliceData(a), unsafe.SliceData(b), k, &shani)
	}
}

// single hashes k whole blocks of s into stream i's state alone.
func (p *SHA256Pair) single(i int, s []byte, k int) {
	if k > 0 {
		sha256blocks1((*[8]uint32)(p.st[i*8:]), unsafe.SliceData(s), k, &shani)
	}
}

// Sum appends stream i's SHA-256 (i is 0 or 1) to in. The stream's state
// is not changed: more may be written after.
func (p *SHA256Pair) Sum(i int, in []byte) []byte {
	if p.h[0] != nil {
		return p.h[i].Sum(in)
	}
	q := *p
	// Padding: a 1 bit, zeros up to 8 bytes short of a block's end, the
	// length in bits.
	var pad [128]byte
	n := copy(pad[:], q.buf[i][:q.nbuf[i]])
	pad[n] = 0x80
	end := 64
	if n >= 56 {
		end = 128
	}
	binary.BigEndian.PutUint64(pad[end-8:end], q.n[i]*8)
	q.single(i, pad[:end], end/64)
	// The state words are F E B A H G D C (see shaniTables.iv).
	s := q.st[i*8 : i*8+8]
	for _, w := range []uint32{s[3], s[2], s[7], s[6], s[1], s[0], s[5], s[4]} {
		in = binary.BigEndian.AppendUint32(in, w)
	}
	return in
}
