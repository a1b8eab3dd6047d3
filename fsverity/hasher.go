package fsverity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
)

// Hasher computes an fs-verity file digest incrementally. It implements
// [hash.Hash] and [hash.Cloner]: Write the file's content in pieces of any
// size, then Sum appends the file digest (the hash of the fs-verity
// descriptor) to a slice.
//
// A Hasher keeps one pending 4096-byte block for the data and one per Merkle
// tree level, so its memory use is proportional to the depth of the tree
// (at most a few tens of KiB), not to the amount of data written. Writes of
// whole, aligned 4096-byte blocks are hashed straight from the caller's
// slice without copying.
//
// A Hasher is not safe for concurrent use. Create one with [New]; the zero
// value is not usable.
type Hasher struct {
	alg Algorithm
	ds  int // digest size in bytes
	// noPairs hashes data blocks one at a time, not several at once
	// (tests compare).
	noPairs bool
	n       uint64 // data bytes written
	nbuf    int    // bytes pending in buf
	// h hashes whole blocks; it is reused for every block, tree block and
	// the descriptor.
	h hash.Hash
	// levels[i] holds the pending (not yet full) hash block of tree level i;
	// level 0 holds the hashes of data blocks. A block that fills up is
	// hashed into the next level at once, so no level is ever full.
	levels []*level
	buf    [BlockSize]byte         // pending partial data block
	desc   [descriptorSize]byte    // scratch for Sum, kept here to avoid allocating
	sums   [8 * MaxDigestSize]byte // scratch for dataBlocks, likewise
}

// level is one pending hash block of the Merkle tree.
type level struct {
	n int // bytes of b in use, a multiple of the digest size
	b [BlockSize]byte
}

// New returns a Hasher computing fs-verity digests with alg, 4096-byte
// blocks and no salt. It panics if alg is not [SHA256] or [SHA512].
func New(alg Algorithm) *Hasher {
	h := &Hasher{alg: alg, ds: alg.Size()}
	switch alg {
	case SHA256:
		h.h = sha256.New()
	case SHA512:
		h.h = sha512.New()
	default:
		panic("fsverity: New: unknown hash algorithm " + alg.String())
	}
	return h
}

// Sum returns the fs-verity digest of data computed with alg. It panics if
// alg is not [SHA256] or [SHA512].
func Sum(data []byte, alg Algorithm) []byte {
	if !alg.Valid() {
		panic("fsverity: Sum: unknown hash algorithm " + alg.String())
	}
	h := getHasher(alg)
	defer putHasher(h)
	h.Write(data)
	return h.Sum(make([]byte, 0, alg.Size()))
}

// Algorithm returns the hash algorithm h was created with.
func (h *Hasher) Algorithm() Algorithm { return h.alg }

// Size returns the digest size of the Hasher's algorithm in bytes.
func (h *Hasher) Size() int { return h.ds }

// BlockSize returns [BlockSize]. Writes that are multiples of it, and
// aligned to it, avoid copying.
func (h *Hasher) BlockSize() int { return BlockSize }

// Len returns the number of data bytes written since creation or the last
// Reset.
func (h *Hasher) Len() uint64 { return h.n }

// Reset resets the Hasher to its initial state, keeping its buffers.
func (h *Hasher) Reset() {
	h.n = 0
	h.nbuf = 0
	for _, l := range h.levels {
		l.n = 0
	}
}

// Write adds p to the data being digested. It never returns an error.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	h.n += uint64(n)
	if h.nbuf > 0 {
		c := copy(h.buf[h.nbuf:], p)
		h.nbuf += c
		p = p[c:]
		if h.nbuf < BlockSize {
			return n, nil
		}
		h.nbuf = 0
		h.dataBlock(h.buf[:])
	}
	if full := len(p) &^ (BlockSize - 1); full > 0 {
		h.dataBlocks(p[:full])
		p = p[full:]
	}
	if len(p) > 0 {
		h.nbuf = copy(h.buf[:], p)
	}
	return n, nil
}

// hashBlock writes the hash of b to dst[:h.ds]. dst must have room for it.
func (h *Hasher) hashBlock(dst, b []byte) {
	h.h.Reset()
	h.h.Write(b)
	h.h.Sum(dst[:0])
}

// level returns the pending block of tree level i, allocating it if needed.
func (h *Hasher) level(i int) *level {
	for len(h.levels) <= i {
		h.levels = append(h.levels, new(level))
	}
	return h.levels[i]
}

// dataBlock hashes the full data block b into tree level 0.
func (h *Hasher) dataBlock(b []byte) {
	l := h.level(0)
	h.hashBlock(l.b[l.n:], b)
	l.n += h.ds
	if l.n == BlockSize {
		h.carry(0)
	}
}

// addDigest appends the digest d to tree level i, hashing full blocks
// upwards. It is used by the parallel digest, whose workers hash whole data
// blocks and whole level-0 hash blocks.
// dataBlocks hashes the data blocks p holds (a multiple of BlockSize
// bytes), several at once where the CPU allows.
func (h *Hasher) dataBlocks(p []byte) {
	sums := h.sums[:]
	for len(p) > 0 {
		n := min(len(p)/BlockSize, 8)
		h.hashBlocks(sums[:n*h.ds], p[:n*BlockSize])
		for i := range n {
			h.addDigest(0, sums[i*h.ds:])
		}
		p = p[n*BlockSize:]
	}
}

// sha512x8Min is the fewest blocks worth hashing with sum512x8: eight
// blocks take it about 2.3 times as long as one block alone.
const sha512x8Min = 3

// hashBlocks writes the digests of the consecutive blocks of src to dst:
// eight SHA-512 at a time with AVX-512, two SHA-256 at a time with the SHA
// extensions, else one at a time.
func (h *Hasher) hashBlocks(dst, src []byte) {
	for len(src) >= BlockSize {
		switch {
		case len(src) >= sha512x8Min*BlockSize && h.alg == SHA512 && haveSHA512x8 && !h.noPairs:
			// Eight blocks at a time; fewer (from sha512x8Min) cost as
			// much as eight but less than one at a time: the lanes left
			// over hash the first block again.
			n := min(len(src)/BlockSize, 8)
			var ptrs [8]*[BlockSize]byte
			for i := range ptrs {
				ptrs[i] = (*[BlockSize]byte)(src[i%n*BlockSize:])
			}
			var out [8][64]byte
			sum512x8(&out, &ptrs)
			for i := range n {
				copy(dst[i*64:], out[i][:])
			}
			dst, src = dst[n*64:], src[n*BlockSize:]
		case len(src) >= 2*BlockSize && h.alg == SHA256 && haveSHA256x2 && !h.noPairs:
			var out [2][32]byte
			sum256x2(&out, (*[BlockSize]byte)(src), (*[BlockSize]byte)(src[BlockSize:]))
			copy(dst, out[0][:])
			copy(dst[32:], out[1][:])
			dst, src = dst[64:], src[2*BlockSize:]
		default:
			h.hashBlock(dst, src[:BlockSize])
			dst, src = dst[h.ds:], src[BlockSize:]
		}
	}
}

func (h *Hasher) addDigest(i int, d []byte) {
	l := h.level(i)
	copy(l.b[l.n:], d[:h.ds])
	l.n += h.ds
	if l.n == BlockSize {
		h.carry(i)
	}
}

// carry hashes the full block of level i into level i+1, and so on upwards
// while blocks fill up.
func (h *Hasher) carry(i int) {
	for {
		cur, next := h.levels[i], h.level(i+1)
		h.hashBlock(next.b[next.n:], cur.b[:])
		cur.n = 0
		next.n += h.ds
		if next.n < BlockSize {
			return
		}
		i++
	}
}

// rootHash writes the Merkle tree root hash of the data written so far to
// root[:h.ds], as the kernel computes it. It does not change the logical
// state of h: it only writes to the unused tails of the pending blocks.
func (h *Hasher) rootHash(root []byte) {
	root = root[:h.ds]
	if h.n == 0 {
		clear(root)
		return
	}
	// carry tells whether root holds the hash of the block below the level
	// being finished. Lower levels are finished first; each one hashes its
	// pending digests plus the carried one into a single digest for the
	// next level. The root is the only digest left at the top.
	carry := false
	if h.nbuf > 0 {
		clear(h.buf[h.nbuf:])
		h.hashBlock(root, h.buf[:])
		carry = true
	}
	top := len(h.levels) - 1
	for top >= 0 && h.levels[top].n == 0 {
		top--
	}
	for i := 0; ; i++ {
		var l *level
		count := 0
		if i < len(h.levels) {
			l = h.levels[i]
			count = l.n / h.ds
		}
		if carry {
			count++
		}
		switch {
		case count == 0:
			continue
		case count == 1 && i >= top:
			if !carry {
				copy(root, l.b[:h.ds])
			}
			return
		}
		// count >= 2, or a level above still has digests: hash this level.
		n := l.n
		if carry {
			copy(l.b[n:], root)
			n += h.ds
		}
		clear(l.b[n:])
		h.hashBlock(root, l.b[:])
		carry = true
	}
}

// descriptor fills h.desc with the kernel's struct fsverity_descriptor for
// the data written so far.
func (h *Hasher) descriptor() {
	d := &h.desc
	*d = [descriptorSize]byte{}
	d[0] = 1 // version
	d[1] = byte(h.alg)
	d[2] = logBlockSize
	d[3] = 0 // salt_size
	// d[4:8]: sig_size, reserved and zero since Linux 5.x.
	binary.LittleEndian.PutUint64(d[8:16], h.n)
	h.rootHash(d[16 : 16+MaxDigestSize])
	// d[80:112] salt, d[112:256] reserved: zero.
}

// Sum appends the fs-verity file digest of the data written so far to b and
// returns the resulting slice. It does not change the state of the Hasher:
// more data may be written afterwards.
func (h *Hasher) Sum(b []byte) []byte {
	h.descriptor()
	h.h.Reset()
	h.h.Write(h.desc[:])
	return h.h.Sum(b)
}

// RootHash appends the Merkle tree root hash of the data written so far to b
// and returns the resulting slice (all zero for empty data). Like Sum, it
// does not change the state of the Hasher.
func (h *Hasher) RootHash(b []byte) []byte {
	r := h.desc[16 : 16+MaxDigestSize]
	h.rootHash(r)
	return append(b, r[:h.ds]...)
}

// Clone returns an independent copy of h, implementing [hash.Cloner]. The
// error is always nil.
func (h *Hasher) Clone() (hash.Cloner, error) {
	return h.clone(), nil
}

func (h *Hasher) clone() *Hasher {
	c := New(h.alg)
	c.n, c.nbuf = h.n, h.nbuf
	copy(c.buf[:h.nbuf], h.buf[:h.nbuf])
	for _, l := range h.levels {
		nl := new(level)
		nl.n = l.n
		copy(nl.b[:l.n], l.b[:l.n])
		c.levels = append(c.levels, nl)
	}
	return c
}

// Interface checks.
var (
	_ hash.Hash   = (*Hasher)(nil)
	_ hash.Cloner = (*Hasher)(nil)
)
