package image

import (
	"bufio"
	"bytes"
	"encoding/binary"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/tree"
)

// emitter writes sequentially, tracking the position and the first error.
type emitter struct {
	w   *bufio.Writer
	pos uint64
	err error
	buf []byte
}

var zeros [erofs.BlockSize]byte

func (e *emitter) write(b []byte) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.Write(b)
	e.pos += uint64(len(b))
}

func (e *emitter) writeString(s string) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.WriteString(s)
	e.pos += uint64(len(s))
}

func (e *emitter) pad(n uint64) {
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		e.write(zeros[:k])
		n -= k
	}
}

func (e *emitter) align(a uint64) { e.pad(roundUp(e.pos, a) - e.pos) }

var le = binary.LittleEndian

func (b *builder) emit(e *emitter) {
	flags := uint32(0)
	if b.hasACL {
		flags |= erofs.ComposefsFlagHasACL
	}
	hdr := make([]byte, 0, erofs.ComposefsHeaderSize)
	hdr = le.AppendUint32(hdr, erofs.ComposefsMagic)
	hdr = le.AppendUint32(hdr, erofs.ComposefsHeaderVersion)
	hdr = le.AppendUint32(hdr, flags)
	hdr = le.AppendUint32(hdr, uint32(b.version))
	hdr = append(hdr, zeros[:16]...)
	e.write(hdr)
	e.pad(erofs.SuperOffset - erofs.ComposefsHeaderSize)

	root := b.nodes[0]
	sb := erofs.SuperBlock{
		Magic:         erofs.SuperMagic,
		FeatureCompat: erofs.FeatureCompatMtime | erofs.FeatureCompatXattrFilter,
		BlkSzBits:     erofs.BlockSizeBits,
		RootNid:       uint16(root.nid),
		Inos:          uint64(len(b.nodes)),
		BuildTime:     uint64(b.minSec),
		BuildTimeNsec: b.minNsec,
		Blocks:        uint32(b.dataStart/erofs.BlockSize + b.nData),
		MetaBlkAddr:   uint32((erofs.SuperOffset + erofs.SuperBlockSize) / erofs.BlockSize),
		XattrBlkAddr:  uint32(b.inodesEnd / erofs.BlockSize),
	}
	sbb, _ := sb.MarshalBinary()
	e.write(sbb)

	b.curEnd = b.dataStart
	for _, ino := range b.nodes {
		b.emitInode(e, ino)
	}
	e.align(erofs.SlotSize)
	for _, x := range b.shared {
		e.emitXattr(x)
	}
	e.align(erofs.BlockSize)
	for _, ino := range b.nodes {
		if ino.typ() == tree.ModeDir {
			e.emitDirents(ino, true, false)
		}
		e.emitBlocks(ino)
	}
}

func (e *emitter) emitXattr(x *xattr) {
	idx, suffix := xattrIndex(x.name)
	e.buf = append(e.buf[:0], uint8(len(suffix)), idx, 0, 0)
	le.PutUint16(e.buf[2:], uint16(len(x.value)))
	e.write(e.buf)
	e.writeString(suffix)
	e.write(x.value)
	e.align(4)
}

// emitInode writes an inode: its header, xattrs and inline tail.
func (b *builder) emitInode(e *emitter, ino *inode) {
	e.pad(ino.ipad)
	nShared, inlineSize := ino.xattrCounts()
	xsize := xattrBodySize(nShared, inlineSize)
	l := ino.dataLayout()
	u := b.blockAddr(ino, l)

	buf := ino.appendHeader(e.buf[:0], l, u, xsize)
	if xsize > 0 {
		buf = b.appendXattrHeader(buf, ino, nShared)
	}
	e.buf = buf
	e.write(buf)
	for i := range ino.xattrs {
		if x := &ino.xattrs[i]; x.shared < 0 {
			e.emitXattr(x)
		}
	}
	e.emitTail(ino, l)
}

// inodeLayout is how an inode's data is described: the on-disk layout, the
// size field, and for chunk-based files the chunk format and count.
type inodeLayout struct {
	layout      uint16
	size        uint64
	chunkFormat uint16
	chunkCount  uint64
}

// dataLayout returns the inode's data layout.
func (ino *inode) dataLayout() inodeLayout {
	l := inodeLayout{layout: erofs.LayoutFlatPlain}
	if ino.tailsize > 0 {
		l.layout = erofs.LayoutFlatInline
	}
	switch ino.typ() {
	case tree.ModeDir:
		l.size = ino.nblocks*erofs.BlockSize + ino.tailsize
	case tree.ModeRegular:
		l.size = ino.size
		if ino.inStore() {
			bits, count := chunking(l.size)
			l.layout = erofs.LayoutChunkBased
			l.chunkFormat = uint16(bits - erofs.BlockSizeBits)
			l.chunkCount = count
		}
	case tree.ModeSymlink:
		if ino.nblocks == 0 {
			l.size = ino.tailsize
		} else {
			l.size = ino.size
		}
	}
	return l
}

// blockAddr returns i_u: the first data block (allocating the inode's
// blocks), a device number, or chunk info (which shares its low 16 bits
// with the block address, as in upstream).
func (b *builder) blockAddr(ino *inode, l inodeLayout) uint32 {
	var u uint32
	switch ino.typ() {
	case tree.ModeChar, tree.ModeBlock:
		u = uint32(ino.src.Rdev)
	case tree.ModeDir, tree.ModeRegular, tree.ModeSymlink:
		if ino.nblocks > 0 {
			u = uint32(b.curEnd / erofs.BlockSize)
			b.curEnd += erofs.BlockSize * ino.nblocks
		}
		if l.layout == erofs.LayoutChunkBased {
			u = u&0xffff0000 | uint32(l.chunkFormat)
		}
	}
	return u
}

// appendHeader appends the compact or extended inode header.
func (ino *inode) appendHeader(buf []byte, l inodeLayout, u uint32, xsize uint64) []byte {
	icount := uint16(0)
	if xsize > 0 {
		icount = uint16((xsize-erofs.XattrHeaderSize)/4 + 1)
	}
	if ino.compact {
		buf = le.AppendUint16(buf, l.layout<<erofs.InodeFormatLayoutShift)
		buf = le.AppendUint16(buf, icount)
		buf = le.AppendUint16(buf, uint16(ino.mode))
		buf = le.AppendUint16(buf, uint16(ino.nlink))
		buf = le.AppendUint32(buf, uint32(l.size))
		buf = le.AppendUint32(buf, 0)
		buf = le.AppendUint32(buf, u)
		buf = le.AppendUint32(buf, ino.ino)
		buf = le.AppendUint16(buf, uint16(ino.src.UID))
		buf = le.AppendUint16(buf, uint16(ino.src.GID))
		return le.AppendUint32(buf, 0)
	}
	buf = le.AppendUint16(buf, l.layout<<erofs.InodeFormatLayoutShift|erofs.InodeLayoutExtended)
	buf = le.AppendUint16(buf, icount)
	buf = le.AppendUint16(buf, uint16(ino.mode))
	buf = le.AppendUint16(buf, 0)
	buf = le.AppendUint64(buf, l.size)
	buf = le.AppendUint32(buf, u)
	buf = le.AppendUint32(buf, ino.ino)
	buf = le.AppendUint32(buf, ino.src.UID)
	buf = le.AppendUint32(buf, ino.src.GID)
	buf = le.AppendUint64(buf, uint64(ino.src.MtimeSec))
	buf = le.AppendUint32(buf, ino.src.MtimeNsec)
	buf = le.AppendUint32(buf, ino.nlink)
	return append(buf, zeros[:16]...)
}

// appendXattrHeader appends the xattr header (with the name filter) and
// the ids of the shared xattrs.
func (b *builder) appendXattrHeader(buf []byte, ino *inode, nShared int) []byte {
	// The name filter has a bit set for each hash no name here has.
	var filter uint32
	for i := range ino.xattrs {
		idx, suffix := xattrIndex(ino.xattrs[i].name)
		h := erofs.XattrFilterHash([]byte(suffix), erofs.XattrFilterSeed+uint32(idx))
		filter |= 1 << (h & (erofs.XattrFilterBits - 1))
	}
	buf = le.AppendUint32(buf, erofs.XattrFilterDefault&^filter)
	buf = append(buf, uint8(nShared), 0, 0, 0, 0, 0, 0, 0)
	for i := range ino.xattrs {
		if x := &ino.xattrs[i]; x.shared >= 0 {
			off := b.inodesEnd%erofs.BlockSize + uint64(x.shared)
			buf = le.AppendUint32(buf, uint32(off/4))
		}
	}
	return buf
}

// emitTail writes the inode's inline data: directory entries, a symlink
// target, a file's content tail or its chunk index.
func (e *emitter) emitTail(ino *inode, l inodeLayout) {
	switch typ := ino.typ(); {
	case typ == tree.ModeDir:
		e.emitDirents(ino, false, true)
	case typ == tree.ModeSymlink:
		if ino.nblocks == 0 {
			e.writeString(ino.src.Payload)
		}
	case typ == tree.ModeRegular && ino.tailsize > 0:
		if ino.src.Content != nil {
			e.write(ino.src.Content[uint64(len(ino.src.Content))-ino.tailsize:])
		} else {
			e.nullChunks(l.chunkCount)
		}
	}
}

// holeChunks is 64 chunk addresses meaning "hole" (never written to).
var holeChunks = bytes.Repeat([]byte{0xff}, 256)

// nullChunks writes n chunk addresses meaning "hole": the file's content is
// not in the image (overlayfs reads it from the object store).
func (e *emitter) nullChunks(n uint64) {
	for n > 0 {
		k := min(n*4, uint64(len(holeChunks)))
		e.write(holeChunks[:k])
		n -= k / 4
	}
}

// emitDirents writes a directory's full blocks (blocks) or its inline tail
// (tail), splitting entries into blocks the way dirSize counted them.
func (e *emitter) emitDirents(ino *inode, blocks, tail bool) {
	var used, written uint64
	first := 0
	for i := range ino.dirents {
		l := direntLen(&ino.dirents[i])
		if used+l > erofs.BlockSize {
			if blocks {
				e.direntChunk(ino.dirents[first:i], erofs.BlockSize)
			}
			written++
			used = 0
			first = i
		}
		used += l
	}
	if written < ino.nblocks {
		if blocks {
			e.direntChunk(ino.dirents[first:], erofs.BlockSize)
		}
		used = 0
		first = len(ino.dirents)
	}
	if tail && used > 0 {
		e.direntChunk(ino.dirents[first:], 1)
	}
}

func (e *emitter) direntChunk(ds []dirent, align uint64) {
	nameoff := uint64(len(ds)) * erofs.DirentSize
	buf := e.buf[:0]
	for i := range ds {
		t := ds[i].target
		buf = le.AppendUint64(buf, t.nid)
		buf = le.AppendUint16(buf, uint16(nameoff))
		buf = append(buf, fileType(t.mode), 0)
		nameoff += uint64(len(ds[i].name))
	}
	for i := range ds {
		buf = append(buf, ds[i].name...)
	}
	e.buf = buf
	e.write(buf)
	e.align(align)
}

func fileType(mode uint32) uint8 {
	switch mode & tree.ModeType {
	case tree.ModeSymlink:
		return erofs.FTSymlink
	case tree.ModeDir:
		return erofs.FTDir
	case tree.ModeRegular:
		return erofs.FTRegFile
	case tree.ModeBlock:
		return erofs.FTBlkdev
	case tree.ModeChar:
		return erofs.FTChrdev
	case tree.ModeSocket:
		return erofs.FTSock
	case tree.ModeFIFO:
		return erofs.FTFifo
	}
	return erofs.FTUnknown
}

// emitBlocks writes a file's or symlink's full data blocks.
func (e *emitter) emitBlocks(ino *inode) {
	if ino.nblocks == 0 {
		return
	}
	switch ino.typ() {
	case tree.ModeRegular:
		if ino.src.Content == nil {
			// A non-inline file whose chunk index didn't fit inline.
			e.nullChunks(erofs.BlockSize / 4)
			return
		}
		for i := uint64(0); i < ino.nblocks; i++ {
			off := i * erofs.BlockSize
			if off < uint64(len(ino.src.Content)) {
				end := min(off+erofs.BlockSize, uint64(len(ino.src.Content)))
				e.write(ino.src.Content[off:end])
			}
			e.align(erofs.BlockSize)
		}
	case tree.ModeSymlink:
		e.writeString(ino.src.Payload)
		e.align(erofs.BlockSize)
	}
}
