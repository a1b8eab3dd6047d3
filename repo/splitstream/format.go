package splitstream

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/gocfs/gocfs/fsverity"
)

// On-disk constants (composefs-rs crates/composefs/src/splitstream.rs).
const (
	// Magic is SPLITSTREAM_MAGIC, the 11 bytes every split stream's
	// header holds.
	Magic = "SplitStream"
	// Version is the only header version there is.
	Version = 0
	// LgBlockSize is log2 of the fs-verity block size split streams are
	// written for (LG_BLOCKSIZE, 4096-byte blocks).
	LgBlockSize = 12
	// HeaderSize is the size of the fixed header at offset 0.
	HeaderSize = 32
	// InfoSize is the size of the info section this package reads and
	// writes; a larger info section is accepted and its tail ignored, as
	// composefs-rs does, for future extensions.
	InfoSize = 80
)

// Reader limits, so that a hostile file can't make a reader allocate
// without bound.
const (
	// MaxWindowSize is the largest zstd window the Reader decodes.
	// composefs-rs compresses with libzstd's default level and no size
	// hint, whose window is 2 MiB; the decoder allocates about one window
	// per zstd section it reads.
	MaxWindowSize = 8 << 20
	// MaxNamedRefsSize bounds the decompressed named references section.
	// A container image's configuration names one stream per layer, in
	// about 80 bytes each.
	MaxNamedRefsSize = 4 << 20
)

// Byte offsets of the header fields in the current layout (SplitstreamHeader,
// #[repr(C)]).
const (
	offMagic     = 0  // magic: [u8; 11]
	offVersion   = 11 // version: u8
	offFlags     = 12 // _flags: U16
	offAlgorithm = 14 // algorithm: u8
	offLgBlock   = 15 // lg_blocksize: u8
	offInfo      = 16 // info: FileRange
)

// Byte offsets of the header fields in the layout composefs-rs wrote before
// it marked the header #[repr(C)] (OldSplitstreamHeader; bootc 1.15 and
// older): the Rust compiler had moved the 8-byte-aligned range first.
const (
	oldOffInfo      = 0
	oldOffFlags     = 16
	oldOffMagic     = 18
	oldOffVersion   = 29
	oldOffAlgorithm = 30
	oldOffLgBlock   = 31
)

// ContentType is the 64-bit tag a split stream carries to say what its
// content is. composefs-rs compares it with the type it expects when it
// opens a stream; the OCI types are 8 ASCII bytes read as a little-endian
// integer.
type ContentType uint64

// The content types composefs-rs's composefs-oci crate writes (skopeo.rs).
const (
	// ContentTypeOCILayer is TAR_LAYER_CONTENT_TYPE, "ocilayer": an
	// uncompressed OCI layer tarball.
	ContentTypeOCILayer ContentType = 0x72657961_6c69636f
	// ContentTypeOCIConfig is OCI_CONFIG_CONTENT_TYPE, "ociconfg": an OCI
	// image configuration, whose named references are its layers' streams
	// (by diff ID) and its composefs images.
	ContentTypeOCIConfig ContentType = 0x67666e6f_6369636f
	// ContentTypeOCIManifest is OCI_MANIFEST_CONTENT_TYPE, "ocimanif": an
	// OCI image manifest.
	ContentTypeOCIManifest ContentType = 0x66696e61_6d69636f
	// ContentTypeOCIBlob is OCI_BLOB_CONTENT_TYPE, "oci_blob": an OCI
	// artifact layer that is not a tarball.
	ContentTypeOCIBlob ContentType = 0x626f6c62_5f69636f
)

// String returns the type's eight bytes when they are printable ASCII
// ("ocilayer"), else its value in hex.
func (t ContentType) String() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(t))
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "0x" + strconv.FormatUint(uint64(t), 16)
		}
	}
	return string(b[:])
}

// Range is a FileRange: the bytes [Start, End) of the file.
type Range struct {
	Start, End uint64
}

// Len returns the range's length; it is only meaningful for a range with
// Start <= End, which the Reader checks.
func (r Range) Len() uint64 { return r.End - r.Start }

func (r Range) String() string { return fmt.Sprintf("[%d, %d)", r.Start, r.End) }

func getRange(b []byte) Range {
	return Range{Start: binary.LittleEndian.Uint64(b), End: binary.LittleEndian.Uint64(b[8:])}
}

func putRange(b []byte, r Range) {
	binary.LittleEndian.PutUint64(b, r.Start)
	binary.LittleEndian.PutUint64(b[8:], r.End)
}

// Info is the info section (SplitstreamInfo): where the other sections
// are, and what the stream holds.
type Info struct {
	StreamRefs  Range       // flat array of split stream digests
	ObjectRefs  Range       // flat array of object digests
	Stream      Range       // zstd-compressed chunks
	NamedRefs   Range       // zstd-compressed "index:name\0" records
	ContentType ContentType // what the stream is
	StreamSize  uint64      // size of the reassembled stream
}

// The fields of the info section, in their on-disk order, and their offsets.
const (
	infoStreamRefs  = 0
	infoObjectRefs  = 16
	infoStream      = 32
	infoNamedRefs   = 48
	infoContentType = 64
	infoStreamSize  = 72
)

func (in *Info) marshal() []byte {
	b := make([]byte, InfoSize)
	putRange(b[infoStreamRefs:], in.StreamRefs)
	putRange(b[infoObjectRefs:], in.ObjectRefs)
	putRange(b[infoStream:], in.Stream)
	putRange(b[infoNamedRefs:], in.NamedRefs)
	binary.LittleEndian.PutUint64(b[infoContentType:], uint64(in.ContentType))
	binary.LittleEndian.PutUint64(b[infoStreamSize:], in.StreamSize)
	return b
}

func unmarshalInfo(b []byte) Info {
	return Info{
		StreamRefs:  getRange(b[infoStreamRefs:]),
		ObjectRefs:  getRange(b[infoObjectRefs:]),
		Stream:      getRange(b[infoStream:]),
		NamedRefs:   getRange(b[infoNamedRefs:]),
		ContentType: ContentType(binary.LittleEndian.Uint64(b[infoContentType:])),
		StreamSize:  binary.LittleEndian.Uint64(b[infoStreamSize:]),
	}
}

// header is the decoded fixed header.
type header struct {
	old       bool // read from the pre-#[repr(C)] layout
	version   uint8
	flags     uint16
	algorithm fsverity.Algorithm
	lgBlock   uint8
	info      Range
}

// marshalHeader encodes the header in the current layout, as composefs-rs
// writes it.
func marshalHeader(alg fsverity.Algorithm, info Range) []byte {
	b := make([]byte, HeaderSize)
	copy(b[offMagic:], Magic)
	b[offVersion] = Version
	binary.LittleEndian.PutUint16(b[offFlags:], 0)
	b[offAlgorithm] = uint8(alg)
	b[offLgBlock] = LgBlockSize
	putRange(b[offInfo:], info)
	return b
}

// parseHeader decodes b (HeaderSize bytes) the way composefs-rs does: the
// current layout if the magic is at offset 0, else the old layout if it is
// at offset 18. It checks the magic only; checkHeader does the rest.
func parseHeader(b []byte) (header, error) {
	if string(b[offMagic:offMagic+len(Magic)]) == Magic {
		return header{
			version:   b[offVersion],
			flags:     binary.LittleEndian.Uint16(b[offFlags:]),
			algorithm: fsverity.Algorithm(b[offAlgorithm]),
			lgBlock:   b[offLgBlock],
			info:      getRange(b[offInfo:]),
		}, nil
	}
	if string(b[oldOffMagic:oldOffMagic+len(Magic)]) == Magic {
		return header{
			old:       true,
			version:   b[oldOffVersion],
			flags:     binary.LittleEndian.Uint16(b[oldOffFlags:]),
			algorithm: fsverity.Algorithm(b[oldOffAlgorithm]),
			lgBlock:   b[oldOffLgBlock],
			info:      getRange(b[oldOffInfo:]),
		}, nil
	}
	return header{}, errAt(ErrNotSplitStream, "header.magic", 0, "no %q at offset %d or %d", Magic, offMagic, oldOffMagic)
}

// checkHeader refuses what composefs-rs refuses, in its order: the version,
// then the algorithm, then the block size. The flags are ignored.
func (h *header) checkHeader(want fsverity.Algorithm) error {
	offV, offA, offL := int64(offVersion), int64(offAlgorithm), int64(offLgBlock)
	if h.old {
		offV, offA, offL = oldOffVersion, oldOffAlgorithm, oldOffLgBlock
	}
	if h.version != Version {
		return errAt(ErrVersion, "header.version", offV, "version %d (only %d exists)", h.version, Version)
	}
	if !h.algorithm.Valid() {
		return errAt(ErrAlgorithm, "header.algorithm", offA, "algorithm %d (want 1 for sha256 or 2 for sha512)", uint8(h.algorithm))
	}
	if want != 0 && h.algorithm != want {
		return errAt(ErrAlgorithm, "header.algorithm", offA, "%s stream, want %s", h.algorithm, want)
	}
	if h.lgBlock != LgBlockSize {
		return errAt(ErrBlockSize, "header.lg_blocksize", offL, "2^%d-byte blocks (want 2^%d)", h.lgBlock, LgBlockSize)
	}
	return nil
}
