package erofs

import (
	"errors"
	"hash/crc32"
	"io"
	"sync"
)

// Feature bits this reader understands. Images with other incompatible
// bits are refused: the compression ones with ErrCompressed, the rest with
// ErrUnsupported.
const (
	supportedIncompat  = FeatureIncompatZeroPadding | FeatureIncompatChunkedFile
	compressedIncompat = FeatureIncompatComprCfgs | FeatureIncompatZtailpacking | FeatureIncompatFragments
)

// Image is an EROFS image opened for reading. It never trusts the image:
// every offset, size, count and index it reads is checked against the
// image and against the structure that contains it, so a hostile image
// yields an error wrapping [ErrCorrupt] (or another sentinel), never a
// panic, a hang or an allocation larger than the image.
//
// An Image is safe for concurrent use.
type Image struct {
	r    io.ReaderAt
	size int64

	sb       SuperBlock
	hdr      ComposefsHeader
	isCFS    bool
	blkbits  uint
	blksz    int64
	metaBase int64 // byte offset of nid 0
	xattrOff int64 // byte offset of shared xattr id 0

	cache blockCache
}

// Open reads the superblock of the EROFS image in r, which is size bytes
// long, and checks it: magic number, block size, feature bits, superblock
// checksum (when the image has one), and that the root inode is a readable
// directory. A composefs header in front of the superblock is recognized
// and made available through [Image.Composefs]; it is not required.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	img := &Image{r: r, size: size}
	if size < SuperOffset+SuperBlockSize {
		return nil, errAt(ErrNotEROFS, 0, "image of %d bytes is too small", size)
	}
	var hb [ComposefsHeaderSize]byte
	if err := img.readRaw(hb[:], 0); err != nil {
		return nil, err
	}
	if le.Uint32(hb[:]) == ComposefsMagic {
		img.isCFS = true
		decode(hb[:], &img.hdr)
	}
	var sbb [SuperBlockSize]byte
	if err := img.readRaw(sbb[:], SuperOffset); err != nil {
		return nil, err
	}
	if err := img.sb.UnmarshalBinary(sbb[:]); err != nil {
		return nil, errAt(ErrNotEROFS, SuperOffset, "%v", err)
	}
	sb := &img.sb
	if sb.Magic != SuperMagic {
		return nil, errAt(ErrNotEROFS, SuperOffset, "bad superblock magic %#08x", sb.Magic)
	}
	if sb.BlkSzBits < 9 || sb.BlkSzBits > BlockSizeBits {
		return nil, errAt(ErrUnsupported, SuperOffset, "block size 2^%d", sb.BlkSzBits)
	}
	img.blkbits = uint(sb.BlkSzBits)
	img.blksz = 1 << img.blkbits
	if sb.FeatureCompat&FeatureCompatSBChksum != 0 {
		if err := img.checkSuperChecksum(); err != nil {
			return nil, err
		}
	}
	if bad := sb.FeatureIncompat & compressedIncompat; bad != 0 {
		return nil, errAt(ErrCompressed, SuperOffset, "incompatible feature bits %#x", bad)
	}
	if bad := sb.FeatureIncompat &^ supportedIncompat; bad != 0 {
		return nil, errAt(ErrUnsupported, SuperOffset, "incompatible feature bits %#x", bad)
	}
	if sb.ExtraDevices != 0 {
		return nil, errAt(ErrUnsupported, SuperOffset, "%d extra devices", sb.ExtraDevices)
	}
	if sb.DirBlkBits != 0 {
		return nil, errAt(ErrUnsupported, SuperOffset, "directory block bits %d", sb.DirBlkBits)
	}
	if sb.XattrPrefixCount != 0 {
		return nil, errAt(ErrUnsupported, SuperOffset, "%d long xattr name prefixes", sb.XattrPrefixCount)
	}
	img.metaBase = int64(sb.MetaBlkAddr) << img.blkbits
	img.xattrOff = int64(sb.XattrBlkAddr) << img.blkbits
	if img.metaBase >= size {
		return nil, errAt(ErrCorrupt, SuperOffset, "meta_blkaddr %d beyond the image", sb.MetaBlkAddr)
	}
	root, err := img.Inode(img.RootNid())
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, errNid(ErrCorrupt, root.Nid, root.Offset, "root inode is not a directory (mode %#o)", root.Mode)
	}
	return img, nil
}

// checkSuperChecksum verifies the crc32c of the superblock block, as the
// kernel does when EROFS_FEATURE_COMPAT_SB_CHKSUM is set.
func (img *Image) checkSuperChecksum() error {
	n := img.blksz
	if n > SuperOffset {
		n -= SuperOffset
	}
	if SuperOffset+n > img.size {
		return errAt(ErrCorrupt, SuperOffset, "image too short for the superblock checksum")
	}
	buf := make([]byte, n)
	if err := img.readRaw(buf, SuperOffset); err != nil {
		return err
	}
	want := le.Uint32(buf[4:])
	clear(buf[4:8])
	// The kernel's crc32c(~0, ...) has no final inversion.
	got := ^crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), buf)
	if got != want {
		return errAt(ErrCorrupt, SuperOffset+4, "superblock checksum %#08x, computed %#08x", want, got)
	}
	return nil
}

// Size returns the size of the image in bytes.
func (img *Image) Size() int64 { return img.size }

// SuperBlock returns a copy of the superblock.
func (img *Image) SuperBlock() SuperBlock { return img.sb }

// BlockSize returns the image's block size in bytes.
func (img *Image) BlockSize() int64 { return img.blksz }

// RootNid returns the root directory's inode number.
func (img *Image) RootNid() uint64 { return uint64(img.sb.RootNid) }

// Composefs returns the composefs header and true when the image starts
// with one (its magic number matches; the other fields are not checked).
func (img *Image) Composefs() (ComposefsHeader, bool) { return img.hdr, img.isCFS }

// MetaOffset returns the byte offset of inode number 0 (meta_blkaddr).
func (img *Image) MetaOffset() int64 { return img.metaBase }

// SharedXattrOffset returns the byte offset of shared xattr id 0
// (xattr_blkaddr).
func (img *Image) SharedXattrOffset() int64 { return img.xattrOff }

// readRaw reads len(p) bytes at off straight from the underlying reader,
// failing with ErrCorrupt when they are not all inside the image.
func (img *Image) readRaw(p []byte, off int64) error {
	if off < 0 || off > img.size || int64(len(p)) > img.size-off {
		return errAt(ErrCorrupt, off, "read of %d bytes beyond the end of the image", len(p))
	}
	n, err := img.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// inRange reports whether [off, off+n) lies inside the image.
func (img *Image) inRange(off, n int64) bool {
	return off >= 0 && n >= 0 && off <= img.size && n <= img.size-off
}

// readMeta reads len(p) bytes at off through the block cache. It is meant
// for the small reads of metadata.
func (img *Image) readMeta(p []byte, off int64) error {
	if !img.inRange(off, int64(len(p))) {
		return errAt(ErrCorrupt, off, "read of %d bytes beyond the end of the image", len(p))
	}
	if len(p) >= 4*cacheBlockSize {
		return img.readRaw(p, off)
	}
	for len(p) > 0 {
		blk := off / cacheBlockSize
		in := off % cacheBlockSize
		n, err := img.cache.copy(img, p, blk, in)
		if err != nil {
			return err
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

const (
	cacheBlockSize = 4096
	cacheEntries   = 64
)

// blockCache keeps recently read 4 KiB blocks of the image. It allocates
// at most cacheEntries blocks for its whole life.
type blockCache struct {
	mu      sync.Mutex
	entries []*cacheEntry
	index   map[int64]*cacheEntry
	hand    int
}

type cacheEntry struct {
	blk int64
	n   int // valid bytes (less than a block at the end of the image)
	buf [cacheBlockSize]byte
}

// copy copies into p the bytes of cache block blk from offset in, reading
// the block if needed, and returns how many it copied.
func (c *blockCache) copy(img *Image, p []byte, blk, in int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.index[blk]
	if e == nil {
		if c.index == nil {
			c.index = make(map[int64]*cacheEntry, cacheEntries)
		}
		if len(c.entries) < cacheEntries {
			e = new(cacheEntry)
			c.entries = append(c.entries, e)
		} else {
			e = c.entries[c.hand]
			c.hand = (c.hand + 1) % cacheEntries
			delete(c.index, e.blk)
		}
		off := blk * cacheBlockSize
		n := min(int64(cacheBlockSize), img.size-off)
		if err := img.readRaw(e.buf[:n], off); err != nil {
			e.blk, e.n = -1, 0
			return 0, err
		}
		e.blk, e.n = blk, int(n)
		c.index[blk] = e
	}
	if int(in) >= e.n {
		return 0, errAt(ErrCorrupt, blk*cacheBlockSize+in, "read beyond the end of the image")
	}
	return copy(p, e.buf[in:e.n]), nil
}
