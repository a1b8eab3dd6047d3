// Package erofs reads EROFS filesystem images and defines their on-disk
// format.
//
// # Format
//
// The on-disk structures are plain Go types, each field commented with its
// name in the kernel's erofs_fs.h, encoded little-endian. Only what
// uncompressed images use is defined: the superblock, compact (32-byte) and
// extended (64-byte) inodes, the inline xattr body and its entries, directory
// entries and chunk indexes. composefs images add a 32-byte header in front
// of the superblock ([ComposefsHeader]).
//
// # Reading
//
// [Open] opens an image over an [io.ReaderAt]; [Image.Inode] decodes an
// inode, whose methods read its xattrs (inline ones first, then shared
// ones, as upstream composefs does), directory entries, symlink target and
// data (flat, tail-packed and chunk-based layouts; holes read as zeros).
// [Image.FS] and [NewFS] give an [io/fs] view of the image that can take
// composefs files' content from an object store. [Image.Walk] walks the
// whole tree depth first, entering each directory once ([DirGuard]).
//
// The reader never trusts the image: every offset, size, count, name
// length, xattr index, shared xattr id, chunk index and inode number is
// checked, directory cycles are detected, and no allocation is larger than
// the image. Errors about the image wrap [ErrCorrupt], [ErrUnsupported],
// [ErrCompressed], [ErrNotEROFS] or [ErrLimit], and all of them
// [io/fs.ErrInvalid]; most are an [*Error] naming the inode and offset.
// README.md lists the hostile-image cases handled.
package erofs

import "encoding/binary"

// Sizes and magic numbers of the format.
const (
	BlockSizeBits = 12
	BlockSize     = 1 << BlockSizeBits // the only block size composefs uses

	SuperOffset    = 1024       // EROFS_SUPER_OFFSET
	SuperMagic     = 0xE0F5E1E2 // EROFS_SUPER_MAGIC_V1
	SuperBlockSize = 128        // sizeof(struct erofs_super_block)

	SlotSizeBits = 5
	SlotSize     = 1 << SlotSizeBits // inode slot (EROFS_ISLOTBITS)

	InodeCompactSize  = 32
	InodeExtendedSize = 64

	XattrHeaderSize = 12 // sizeof(struct erofs_xattr_ibody_header)
	XattrEntrySize  = 4  // sizeof(struct erofs_xattr_entry)
	DirentSize      = 12 // sizeof(struct erofs_dirent)

	NullAddr = 0xFFFFFFFF // EROFS_NULL_ADDR: a hole in a chunk map

	ComposefsMagic         = 0xd078629a // LCFS_EROFS_MAGIC
	ComposefsHeaderVersion = 1          // LCFS_EROFS_VERSION
	ComposefsHeaderSize    = 32
	// ComposefsFlagHasACL is set in the header when some inode has a POSIX ACL.
	ComposefsFlagHasACL = 1 << 0
)

// Feature bits.
const (
	FeatureCompatSBChksum    = 0x00000001
	FeatureCompatMtime       = 0x00000002
	FeatureCompatXattrFilter = 0x00000004

	FeatureIncompatZeroPadding   = 0x00000001
	FeatureIncompatComprCfgs     = 0x00000002 // also BIG_PCLUSTER
	FeatureIncompatChunkedFile   = 0x00000004
	FeatureIncompatDeviceTable   = 0x00000008 // also COMPR_HEAD2
	FeatureIncompatZtailpacking  = 0x00000010
	FeatureIncompatFragments     = 0x00000020 // also DEDUPE
	FeatureIncompatXattrPrefixes = 0x00000040
	FeatureIncompatAll           = 0x0000007f
)

// Inode data layouts (i_format bits 1-3).
const (
	LayoutFlatPlain          = 0
	LayoutCompressedFull     = 1
	LayoutFlatInline         = 2
	LayoutCompressedCompact  = 3
	LayoutChunkBased         = 4
	InodeLayoutCompact       = 0 // i_format bit 0
	InodeLayoutExtended      = 1
	ChunkFormatBlkbitsMask   = 0x001F
	ChunkFormatIndexes       = 0x0020
	InodeFormatVersionMask   = 0x01
	InodeFormatLayoutShift   = 1
	InodeFormatLayoutMask    = 0x07
	InodeFormatAllBits       = 0x0F
	InodeFormatVersionBitPos = 0
)

// Directory entry file types (EROFS_FT_*).
const (
	FTUnknown = 0
	FTRegFile = 1
	FTDir     = 2
	FTChrdev  = 3
	FTBlkdev  = 4
	FTFifo    = 5
	FTSock    = 6
	FTSymlink = 7
)

// Xattr name indexes (EROFS_XATTR_INDEX_*) and the name filter.
const (
	XattrIndexUser            = 1
	XattrIndexPosixACLAccess  = 2
	XattrIndexPosixACLDefault = 3
	XattrIndexTrusted         = 4
	XattrIndexLustre          = 5
	XattrIndexSecurity        = 6
	XattrLongPrefix           = 0x80

	XattrFilterBits    = 32
	XattrFilterDefault = 0xFFFFFFFF
	XattrFilterSeed    = 0x25BBE08F
)

// XattrPrefixes maps a name index to the prefix it stands for.
var XattrPrefixes = map[uint8]string{
	XattrIndexUser:            "user.",
	XattrIndexPosixACLAccess:  "system.posix_acl_access",
	XattrIndexPosixACLDefault: "system.posix_acl_default",
	XattrIndexTrusted:         "trusted.",
	XattrIndexLustre:          "lustre.",
	XattrIndexSecurity:        "security.",
}

// SuperBlock is struct erofs_super_block (128 bytes at offset 1024).
type SuperBlock struct {
	Magic            uint32   // magic
	Checksum         uint32   // checksum: crc32c of the block when SB_CHKSUM
	FeatureCompat    uint32   // feature_compat
	BlkSzBits        uint8    // blkszbits
	SbExtSlots       uint8    // sb_extslots
	RootNid          uint16   // root_nid
	Inos             uint64   // inos
	BuildTime        uint64   // build_time: mtime of compact inodes
	BuildTimeNsec    uint32   // build_time_nsec
	Blocks           uint32   // blocks
	MetaBlkAddr      uint32   // meta_blkaddr: block of nid 0
	XattrBlkAddr     uint32   // xattr_blkaddr: block of the shared xattrs
	UUID             [16]byte // uuid
	VolumeName       [16]byte // volume_name
	FeatureIncompat  uint32   // feature_incompat
	U1               uint16   // available_compr_algs / lz4_max_distance
	ExtraDevices     uint16   // extra_devices
	DevtSlotOff      uint16   // devt_slotoff
	DirBlkBits       uint8    // dirblkbits
	XattrPrefixCount uint8    // xattr_prefix_count
	XattrPrefixStart uint32   // xattr_prefix_start
	PackedNid        uint64   // packed_nid
	XattrFilterRes   uint8    // xattr_filter_reserved
	Reserved2        [23]byte // reserved2
}

// InodeCompact is struct erofs_inode_compact (32 bytes).
type InodeCompact struct {
	Format     uint16 // i_format
	XattrCount uint16 // i_xattr_icount
	Mode       uint16 // i_mode
	Nlink      uint16 // i_nlink
	Size       uint32 // i_size
	Reserved   uint32 // i_reserved
	U          uint32 // i_u: raw_blkaddr, rdev, or chunk info (format, reserved)
	Ino        uint32 // i_ino
	UID        uint16 // i_uid
	GID        uint16 // i_gid
	Reserved2  uint32 // i_reserved2
}

// InodeExtended is struct erofs_inode_extended (64 bytes).
type InodeExtended struct {
	Format     uint16   // i_format
	XattrCount uint16   // i_xattr_icount
	Mode       uint16   // i_mode
	Reserved   uint16   // i_reserved
	Size       uint64   // i_size
	U          uint32   // i_u: raw_blkaddr, rdev, or chunk info
	Ino        uint32   // i_ino
	UID        uint32   // i_uid
	GID        uint32   // i_gid
	Mtime      uint64   // i_mtime
	MtimeNsec  uint32   // i_mtime_nsec
	Nlink      uint32   // i_nlink
	Reserved2  [16]byte // i_reserved2
}

// XattrIbodyHeader is struct erofs_xattr_ibody_header (12 bytes), followed
// by SharedCount le32 shared xattr ids.
type XattrIbodyHeader struct {
	NameFilter  uint32  // h_name_filter: bit set = name absent
	SharedCount uint8   // h_shared_count
	Reserved2   [7]byte // h_reserved2
}

// XattrEntry is struct erofs_xattr_entry (4 bytes), followed by the name
// suffix and the value, padded to 4 bytes.
type XattrEntry struct {
	NameLen   uint8  // e_name_len
	NameIndex uint8  // e_name_index
	ValueSize uint16 // e_value_size
}

// Dirent is struct erofs_dirent (12 bytes).
type Dirent struct {
	Nid      uint64 // nid
	NameOff  uint16 // nameoff: offset of the name in the block
	FileType uint8  // file_type
	Reserved uint8  // reserved
}

// ComposefsHeader is struct lcfs_erofs_header_s, the first 32 bytes of a
// composefs image.
type ComposefsHeader struct {
	Magic            uint32    // magic: ComposefsMagic
	Version          uint32    // version: ComposefsHeaderVersion
	Flags            uint32    // flags: ComposefsFlagHasACL
	ComposefsVersion uint32    // composefs_version: image format version
	Unused           [4]uint32 // unused
}

var le = binary.LittleEndian

// MarshalBinary encodes the superblock.
func (s *SuperBlock) MarshalBinary() ([]byte, error) {
	return binary.Append(make([]byte, 0, SuperBlockSize), le, s)
}

// UnmarshalBinary decodes a superblock from at least 128 bytes.
func (s *SuperBlock) UnmarshalBinary(b []byte) error {
	_, err := binary.Decode(b, le, s)
	return err
}

// XattrFilterHash is the xxh32 hash EROFS uses for its xattr name bloom
// filter (a self-contained implementation of xxHash32).
func XattrFilterHash(b []byte, seed uint32) uint32 {
	const (
		p1 uint32 = 2654435761
		p2 uint32 = 2246822519
		p3 uint32 = 3266489917
		p4 uint32 = 668265263
		p5 uint32 = 374761393
	)
	rotl := func(x uint32, r uint) uint32 { return x<<r | x>>(32-r) }
	round := func(acc, in uint32) uint32 { return rotl(acc+in*p2, 13) * p1 }
	n := len(b)
	var h uint32
	if n >= 16 {
		v1, v2, v3, v4 := seed+p1+p2, seed+p2, seed, seed-p1
		for len(b) >= 16 {
			v1 = round(v1, le.Uint32(b[0:]))
			v2 = round(v2, le.Uint32(b[4:]))
			v3 = round(v3, le.Uint32(b[8:]))
			v4 = round(v4, le.Uint32(b[12:]))
			b = b[16:]
		}
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
	} else {
		h = seed + p5
	}
	h += uint32(n)
	for len(b) >= 4 {
		h = rotl(h+le.Uint32(b)*p3, 17) * p4
		b = b[4:]
	}
	for _, c := range b {
		h = rotl(h+uint32(c)*p5, 11) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}

// Chunk index entry sizes: a chunk-based inode without ChunkFormatIndexes
// maps each chunk with a le32 block address (the block map), one with it
// uses struct erofs_inode_chunk_index.
const (
	BlockMapEntrySize = 4
	ChunkIndexSize    = 8 // sizeof(struct erofs_inode_chunk_index)
)

// ChunkIndex is struct erofs_inode_chunk_index (8 bytes).
type ChunkIndex struct {
	Advise   uint16 // advise: unused
	DeviceID uint16 // device_id: 0 is the primary device
	BlkAddr  uint32 // blkaddr: NullAddr for a hole
}
