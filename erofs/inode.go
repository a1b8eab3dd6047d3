package erofs

import (
	"encoding/binary"
	"io"
	"math"
)

// File type bits of an inode's mode, as in stat(2).
const (
	ModeType    = 0o170000
	ModeSocket  = 0o140000
	ModeSymlink = 0o120000
	ModeRegular = 0o100000
	ModeBlock   = 0o060000
	ModeDir     = 0o040000
	ModeChar    = 0o020000
	ModeFIFO    = 0o010000
)

// MaxSymlinkLen is the longest symlink target the reader accepts (the
// kernel's limit: less than a page, PATH_MAX including the NUL).
const MaxSymlinkLen = 4095

// MaxNameLen is the longest directory entry name (EROFS_NAME_LEN).
const MaxNameLen = 255

func decode(b []byte, v any) {
	// Callers always pass enough bytes.
	if _, err := binary.Decode(b, le, v); err != nil {
		panic("erofs: short buffer decoding " + err.Error())
	}
}

// Inode is a decoded inode: the stat fields of its compact or extended
// on-disk form, and what is needed to reach its xattrs and data.
type Inode struct {
	Nid        uint64 // inode number (slot index from meta_blkaddr)
	Offset     int64  // byte offset of the inode in the image
	Extended   bool   // 64-byte extended inode (else 32-byte compact)
	Format     uint16 // i_format
	Layout     uint8  // data layout (LayoutFlatPlain, ...)
	Mode       uint32 // type and permission bits
	Nlink      uint32
	UID, GID   uint32
	Size       uint64
	MtimeSec   int64 // for compact inodes, the superblock's build time
	MtimeNsec  uint32
	Rdev       uint32 // device number of character and block devices
	Ino        uint32 // i_ino
	RawBlkAddr uint32 // i_u: first data block, rdev or chunk format
	XattrCount uint16 // i_xattr_icount

	img *Image
}

// Inode reads and decodes inode nid. It checks that the inode and its
// xattr area lie inside the image and that its format is one this reader
// knows; it does not follow its data or xattrs.
func (img *Image) Inode(nid uint64) (*Inode, error) {
	avail := img.size - img.metaBase
	if avail < InodeCompactSize || nid > uint64(avail-InodeCompactSize)/SlotSize {
		return nil, errNid(ErrCorrupt, nid, -1, "inode number out of range")
	}
	off := img.metaBase + int64(nid)*SlotSize
	var b [InodeExtendedSize]byte
	if err := img.readMeta(b[:InodeCompactSize], off); err != nil {
		return nil, err
	}
	in := &Inode{Nid: nid, Offset: off, img: img}
	in.Format = le.Uint16(b[:])
	if in.Format&^InodeFormatAllBits != 0 {
		return nil, errNid(ErrUnsupported, nid, off, "unknown i_format bits %#x", in.Format)
	}
	in.Extended = in.Format&InodeFormatVersionMask == InodeLayoutExtended
	in.Layout = uint8(in.Format >> InodeFormatLayoutShift & InodeFormatLayoutMask)
	if in.Layout > LayoutChunkBased {
		return nil, errNid(ErrUnsupported, nid, off, "unknown data layout %d", in.Layout)
	}
	if in.Extended {
		if !img.inRange(off, InodeExtendedSize) {
			return nil, errNid(ErrCorrupt, nid, off, "extended inode beyond the end of the image")
		}
		if err := img.readMeta(b[InodeCompactSize:], off+InodeCompactSize); err != nil {
			return nil, err
		}
		var e InodeExtended
		decode(b[:], &e)
		in.XattrCount = e.XattrCount
		in.Mode = uint32(e.Mode)
		in.Size = e.Size
		in.RawBlkAddr = e.U
		in.Ino = e.Ino
		in.UID, in.GID = e.UID, e.GID
		in.MtimeSec = int64(e.Mtime)
		in.MtimeNsec = e.MtimeNsec
		in.Nlink = e.Nlink
	} else {
		var c InodeCompact
		decode(b[:InodeCompactSize], &c)
		in.XattrCount = c.XattrCount
		in.Mode = uint32(c.Mode)
		in.Nlink = uint32(c.Nlink)
		in.Size = uint64(c.Size)
		in.RawBlkAddr = c.U
		in.Ino = c.Ino
		in.UID, in.GID = uint32(c.UID), uint32(c.GID)
		in.MtimeSec = int64(img.sb.BuildTime)
		in.MtimeNsec = img.sb.BuildTimeNsec
	}
	if t := in.Mode & ModeType; t == ModeChar || t == ModeBlock {
		in.Rdev = in.RawBlkAddr
	}
	if !img.inRange(off, in.InodeSize()+in.XattrSize()) {
		return nil, errNid(ErrCorrupt, nid, off, "xattr area of %d bytes beyond the end of the image", in.XattrSize())
	}
	return in, nil
}

// Image returns the image the inode belongs to.
func (in *Inode) Image() *Image { return in.img }

// Type returns the file type bits of the mode.
func (in *Inode) Type() uint32 { return in.Mode & ModeType }

// IsDir reports whether the inode is a directory.
func (in *Inode) IsDir() bool { return in.Type() == ModeDir }

// IsRegular reports whether the inode is a regular file.
func (in *Inode) IsRegular() bool { return in.Type() == ModeRegular }

// IsSymlink reports whether the inode is a symbolic link.
func (in *Inode) IsSymlink() bool { return in.Type() == ModeSymlink }

// InodeSize returns the size of the on-disk inode: 32 or 64 bytes.
func (in *Inode) InodeSize() int64 {
	if in.Extended {
		return InodeExtendedSize
	}
	return InodeCompactSize
}

// XattrSize returns the size of the inode's xattr area (0 without xattrs).
func (in *Inode) XattrSize() int64 {
	if in.XattrCount == 0 {
		return 0
	}
	return XattrHeaderSize + int64(in.XattrCount-1)*XattrEntrySize
}

// inlineOffset is where tail-packed data or the chunk index begins.
func (in *Inode) inlineOffset() int64 { return in.Offset + in.InodeSize() + in.XattrSize() }

// Compressed reports whether the inode's data layout is a compressed one.
func (in *Inode) Compressed() bool {
	return in.Layout == LayoutCompressedFull || in.Layout == LayoutCompressedCompact
}

// hasData reports whether the inode's type stores data (regular files,
// directories and symlinks).
func (in *Inode) hasData() bool {
	switch in.Type() {
	case ModeRegular, ModeDir, ModeSymlink:
		return true
	}
	return false
}

// Extent maps a range of an inode's data to where the image stores it.
type Extent struct {
	Logical  int64 // offset in the file
	Length   int64 // bytes
	Physical int64 // offset in the image, or -1 for a hole (reads as zeros)
	Inline   bool  // tail-packed in the inode's metadata
}

// dataMap holds an inode's checked layout parameters.
type dataMap struct {
	size      int64
	phys      int64 // flat: offset of the first block
	oob       int64 // flat inline: bytes stored in blocks
	tailOff   int64 // flat inline: offset of the tail
	chunkBits uint
	unit      int64 // chunk index entry size
	idxOff    int64 // offset of the chunk index
	nchunks   int64
}

// dataMap checks the inode's layout against the image and returns it.
func (in *Inode) dataMap() (*dataMap, error) {
	img := in.img
	if in.Compressed() {
		return nil, errNid(ErrCompressed, in.Nid, in.Offset, "data layout %d", in.Layout)
	}
	if in.Size > math.MaxInt64 {
		return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "size %d too large", in.Size)
	}
	m := &dataMap{size: int64(in.Size)}
	if m.size == 0 {
		return m, nil
	}
	switch in.Layout {
	case LayoutFlatPlain:
		m.phys = int64(in.RawBlkAddr) << img.blkbits
		if !img.inRange(m.phys, m.size) {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "data of %d bytes at block %d beyond the end of the image", m.size, in.RawBlkAddr)
		}
	case LayoutFlatInline:
		if m.size > img.size {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "inline-layout size %d larger than the image", m.size)
		}
		nblocks := (m.size + img.blksz - 1) >> img.blkbits
		m.oob = (nblocks - 1) << img.blkbits
		tail := m.size - m.oob
		m.phys = int64(in.RawBlkAddr) << img.blkbits
		if m.oob > 0 && !img.inRange(m.phys, m.oob) {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "data of %d bytes at block %d beyond the end of the image", m.oob, in.RawBlkAddr)
		}
		m.tailOff = in.inlineOffset()
		if !img.inRange(m.tailOff, tail) {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "inline data of %d bytes beyond the end of the image", tail)
		}
		if m.tailOff%img.blksz+tail > img.blksz {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "inline data of %d bytes crosses a block boundary", tail)
		}
	case LayoutChunkBased:
		format := uint16(in.RawBlkAddr)
		if format&^(ChunkFormatBlkbitsMask|ChunkFormatIndexes) != 0 {
			return nil, errNid(ErrUnsupported, in.Nid, in.Offset, "chunk format %#x", format)
		}
		m.chunkBits = img.blkbits + uint(format&ChunkFormatBlkbitsMask)
		m.unit = BlockMapEntrySize
		if format&ChunkFormatIndexes != 0 {
			m.unit = ChunkIndexSize
		}
		m.idxOff = (in.inlineOffset() + m.unit - 1) &^ (m.unit - 1)
		m.nchunks = m.size >> m.chunkBits
		if m.size&(1<<m.chunkBits-1) != 0 {
			m.nchunks++
		}
		if !img.inRange(m.idxOff, 0) || m.nchunks > (img.size-m.idxOff)/m.unit {
			return nil, errNid(ErrCorrupt, in.Nid, in.Offset, "chunk index of %d entries beyond the end of the image", m.nchunks)
		}
	default:
		return nil, errNid(ErrUnsupported, in.Nid, in.Offset, "data layout %d", in.Layout)
	}
	return m, nil
}

// chunk returns the extent of chunk i.
func (in *Inode) chunk(m *dataMap, i int64) (Extent, error) {
	var b [ChunkIndexSize]byte
	eoff := m.idxOff + i*m.unit
	if err := in.img.readMeta(b[:m.unit], eoff); err != nil {
		return Extent{}, err
	}
	var blk uint32
	if m.unit == ChunkIndexSize {
		var ci ChunkIndex
		decode(b[:], &ci)
		blk = ci.BlkAddr
	} else {
		blk = le.Uint32(b[:])
	}
	logical := i << m.chunkBits
	e := Extent{Logical: logical, Length: min(int64(1)<<m.chunkBits, m.size-logical), Physical: -1}
	if blk != NullAddr {
		e.Physical = int64(blk) << in.img.blkbits
		if !in.img.inRange(e.Physical, e.Length) {
			return Extent{}, errNid(ErrCorrupt, in.Nid, eoff, "chunk %d at block %d beyond the end of the image", i, blk)
		}
	}
	return e, nil
}

// extentAt returns the extent holding file offset off (0 <= off < size).
func (in *Inode) extentAt(m *dataMap, off int64) (Extent, error) {
	switch in.Layout {
	case LayoutFlatPlain:
		return Extent{Length: m.size, Physical: m.phys}, nil
	case LayoutFlatInline:
		if off < m.oob {
			return Extent{Length: m.oob, Physical: m.phys}, nil
		}
		return Extent{Logical: m.oob, Length: m.size - m.oob, Physical: m.tailOff, Inline: true}, nil
	}
	return in.chunk(m, off>>m.chunkBits)
}

// Extents returns where every byte of the inode's data is stored, in file
// order. Adjacent chunks stored contiguously are merged. The number of
// extents is bounded by the image size. Inodes without data (devices,
// FIFOs, sockets) have none.
func (in *Inode) Extents() ([]Extent, error) {
	if !in.hasData() {
		return nil, nil
	}
	m, err := in.dataMap()
	if err != nil || m.size == 0 {
		return nil, err
	}
	switch in.Layout {
	case LayoutFlatPlain:
		return []Extent{{Length: m.size, Physical: m.phys}}, nil
	case LayoutFlatInline:
		var r []Extent
		if m.oob > 0 {
			r = append(r, Extent{Length: m.oob, Physical: m.phys})
		}
		return append(r, Extent{Logical: m.oob, Length: m.size - m.oob, Physical: m.tailOff, Inline: true}), nil
	}
	var r []Extent
	for i := int64(0); i < m.nchunks; i++ {
		e, err := in.chunk(m, i)
		if err != nil {
			return nil, err
		}
		if n := len(r); n > 0 {
			last := &r[n-1]
			if (last.Physical < 0 && e.Physical < 0) || (last.Physical >= 0 && last.Physical+last.Length == e.Physical) {
				last.Length += e.Length
				continue
			}
		}
		r = append(r, e)
	}
	return r, nil
}

// MetaSize returns how many bytes of metadata the inode occupies from its
// offset: the inode, its xattr area and its tail-packed data or chunk
// index.
func (in *Inode) MetaSize() (int64, error) {
	n := in.InodeSize() + in.XattrSize()
	if !in.hasData() || in.Size == 0 {
		return n, nil
	}
	m, err := in.dataMap()
	if err != nil {
		return 0, err
	}
	switch in.Layout {
	case LayoutFlatInline:
		return m.tailOff + m.size - m.oob - in.Offset, nil
	case LayoutChunkBased:
		return m.idxOff + m.nchunks*m.unit - in.Offset, nil
	}
	return n, nil
}

// ReadAt reads the inode's data at offset off, as [io.ReaderAt] does.
// Holes read as zeros. It fails for inodes whose data is compressed and
// for special files.
func (in *Inode) ReadAt(p []byte, off int64) (int, error) {
	if !in.hasData() {
		return 0, errNid(ErrCorrupt, in.Nid, in.Offset, "inode of mode %#o has no data", in.Mode)
	}
	m, err := in.dataMap()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errNid(ErrCorrupt, in.Nid, in.Offset, "negative read offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= m.size {
			return n, io.EOF
		}
		e, err := in.extentAt(m, off)
		if err != nil {
			return n, err
		}
		k := int(min(int64(len(p)), e.Logical+e.Length-off))
		switch {
		case e.Physical < 0:
			clear(p[:k])
		case e.Inline:
			err = in.img.readMeta(p[:k], e.Physical+off-e.Logical)
		default:
			err = in.img.readRaw(p[:k], e.Physical+off-e.Logical)
		}
		if err != nil {
			return n, err
		}
		n += k
		p = p[k:]
		off += int64(k)
	}
	return n, nil
}

// Readlink returns a symlink's target. Targets must be 1 to
// [MaxSymlinkLen] bytes long; they are returned as stored, NUL bytes
// included.
func (in *Inode) Readlink() (string, error) {
	if !in.IsSymlink() {
		return "", ErrNotSymlink
	}
	if in.Size == 0 || in.Size > MaxSymlinkLen {
		return "", errNid(ErrCorrupt, in.Nid, in.Offset, "symlink target of %d bytes", in.Size)
	}
	b := make([]byte, in.Size)
	if _, err := in.ReadAt(b, 0); err != nil {
		return "", err
	}
	return string(b), nil
}
