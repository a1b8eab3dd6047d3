// Package verify checks an untrusted composefs image before the kernel
// sees it.
//
// [Image] and [File] walk every inode reachable from the root and check the
// structure the kernel's EROFS driver and overlayfs rely on: the composefs
// header, the superblock (magic, 4 KiB blocks, known feature bits only, no
// compression, root and area addresses in range), each inode's mode and
// data layout, that data extents and metadata stay inside the image and
// never overlap one another, directory blocks (names, the sorted order the
// kernel's binary search needs, nameoff consistency, "." and "..",
// dirent file types matching the inodes), symlink targets, and xattrs
// (prefix indexes, the name filter, and the overlayfs xattrs composefs
// writes, decoded by package schema: redirects that name an object of the
// store by its digest, well-formed metacopy values that agree with them).
//
// With an object store (Options.Basedir), every object a redirect names
// must exist, be a regular file of the inode's size and, when the image
// records a digest, have that fs-verity digest (measured by the kernel when
// the object has fs-verity, computed otherwise). Objects are opened beneath
// Basedir without following any symbolic link: an object that is, or whose
// directory is, a symlink is a problem, since the kernel and the FUSE
// server refuse it too. With Options.Digest, the image's own fs-verity
// digest must match.
//
// Problems do not stop the check: the [Report] lists every one found, with
// the path, what is wrong and why. The work done is bounded by the image
// size, so a hostile image can't make the check hang or use unbounded
// memory, and paths and values quoted in problems are shortened.
//
// # Problem kinds
//
// [Problem.What] is one of:
//
//	header      composefs header: missing, version, flags, reserved fields, ACL flag
//	superblock  superblock: unreadable, block size, block count, area addresses
//	feature     unknown feature bits
//	inode       an inode that can't be read (nid out of range, unknown format)
//	mode        invalid file type
//	layout      compressed or otherwise unusable data layout
//	extent      data outside the image, the block count or (composefs) inside the metadata area
//	overlap     two structures (inodes, shared xattrs, data blocks, superblock) sharing bytes
//	dirent      malformed directory block, missing or wrong "." and ".."
//	order       directory entries not in the sorted order lookups need
//	name        a name with '/' or NUL
//	filetype    a directory entry's file type not matching the inode
//	hardlink    a directory reached through a second entry (hard link or cycle)
//	symlink     empty, overlong or NUL-containing target
//	size        a special file with a size
//	whiteout    a hard-linked whiteout, which composefs refuses
//	xattr       malformed xattrs, duplicates, the name filter hiding one, stray overlayfs xattrs
//	redirect    a redirect outside the object store, not a digest path, or not matching the digest
//	metacopy    a malformed metacopy value
//	object      an object missing from the store, reached through a symlink, not a regular file, or of the wrong size
//	digest      an object's or the image's fs-verity digest not matching
//	limit       the check stopped: the image needs more work than its size justifies
//
// Plain EROFS images (without composefs header) can be checked too: they
// get one header problem, and the composefs-specific xattr checks are
// skipped.
package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/schema"
)

// Options controls what is checked besides the image's structure.
type Options struct {
	// Basedir is the object store redirects point into. When set, each
	// referenced object must exist there with the right size and digest.
	Basedir string
	// Digest, when not nil, is the SHA-256 fs-verity digest the image
	// file must have.
	Digest []byte
	// MaxProblems bounds how many problems are listed (default 1000);
	// the count of the others is still reported.
	MaxProblems int
}

// Problem is one thing wrong with the image.
type Problem struct {
	// Path is the file concerned, escaped as in composefs-dump(5), or ""
	// for the image as a whole.
	Path string `json:"path,omitempty"`
	// Nid is the inode number concerned, if any.
	Nid *uint64 `json:"nid,omitempty"`
	// Offset is the byte offset in the image concerned, if any.
	Offset *int64 `json:"offset,omitempty"`
	// What is a short identifier of the kind of problem (see the package
	// documentation).
	What string `json:"what"`
	// Why explains the problem.
	Why string `json:"why"`
}

// String formats the problem as "PATH: WHAT: WHY (nid N, offset 0xO)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
	} else {
		b.WriteString("image")
	}
	fmt.Fprintf(&b, ": %s: %s", p.What, p.Why)
	switch {
	case p.Nid != nil && p.Offset != nil:
		fmt.Fprintf(&b, " (nid %d, offset %#x)", *p.Nid, *p.Offset)
	case p.Nid != nil:
		fmt.Fprintf(&b, " (nid %d)", *p.Nid)
	case p.Offset != nil:
		fmt.Fprintf(&b, " (offset %#x)", *p.Offset)
	}
	return b.String()
}

// Stats counts what was checked.
type Stats struct {
	Inodes      int `json:"inodes"`
	Directories int `json:"directories"`
	Files       int `json:"files"`
	Symlinks    int `json:"symlinks"`
	Others      int `json:"others"`
	HardLinks   int `json:"hard_links"`
	Objects     int `json:"objects"`           // distinct objects referenced
	Checked     int `json:"objects_checked"`   // objects checked in Basedir
	Unverified  int `json:"objects_no_digest"` // objects without a digest to check
}

// Report is the outcome of a check.
type Report struct {
	Image     string    `json:"image,omitempty"`
	Composefs bool      `json:"composefs"`
	Version   int       `json:"composefs_version"`
	OK        bool      `json:"ok"`
	Problems  []Problem `json:"problems"`
	Omitted   int       `json:"problems_omitted,omitempty"`
	Stats     Stats     `json:"stats"`
}

// File checks the image file at path. With opts.Digest, the file's
// fs-verity digest is measured by the kernel if the file has fs-verity,
// computed otherwise ([fsverity.MeasureOrCompute]). The error reports failures to read the file, not
// problems with the image.
func File(path string, opts Options) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	var measured []byte
	if opts.Digest != nil {
		if measured, _, err = fsverity.MeasureOrCompute(f, fsverity.SHA256); err != nil {
			return nil, err
		}
	}
	v := newVerifier(f, st.Size(), opts)
	v.imageDigest = measured
	r, err := v.run()
	if r != nil {
		r.Image = path
	}
	return r, err
}

// Image checks the image in r, size bytes long. With opts.Digest, the
// image's fs-verity digest is computed from r. The error reports failures
// to read r, not problems with the image.
func Image(r io.ReaderAt, size int64, opts Options) (*Report, error) {
	return newVerifier(r, size, opts).run()
}

func newVerifier(r io.ReaderAt, size int64, opts Options) *verifier {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 1000
	}
	return &verifier{
		r:       r,
		size:    size,
		opts:    opts,
		report:  &Report{Problems: []Problem{}},
		budget:  workFactor*size + workSlack,
		types:   make(map[uint64]uint32),
		links:   make(map[uint64]link),
		shared:  make(map[uint32]*sharedInfo),
		objects: make(map[digest.Digest]*object),
	}
}

// Work bounds: bytes of inodes, xattrs, directories and chunk indexes
// examined, relative to the image size. A valid image needs at most about
// its own size (each structure is read once).
const (
	workFactor = 4
	workSlack  = 1 << 20
)

type verifier struct {
	r           io.ReaderAt
	size        int64
	opts        Options
	report      *Report
	img         *erofs.Image
	cfs         bool
	imageDigest []byte
	budget      int64
	stopped     bool

	types   map[uint64]uint32 // nid -> type of inodes visited
	links   map[uint64]link   // nid -> the entry it was first reached through
	shared  map[uint32]*sharedInfo
	objects map[digest.Digest]*object
	regions []region
	hasACL  bool
	filter  bool // the superblock has the xattr name filter
}

type sharedInfo struct {
	x   erofs.Xattr
	err error
}

type object struct {
	path   at            // first file using it
	size   uint64        // its size there
	digest digest.Digest // the first metacopy digest given for it; zero for none
}

// region is a byte range of the image with its use.
type region struct {
	start, end int64
	kind       int
	owner      at
}

const (
	regionSuper = iota
	regionMeta
	regionData
)

// at is where a problem is: the escaped path of a file (nil for the image
// as a whole), made only when a problem is recorded, since a hostile
// image's paths can be very long and its problems many. It is also a
// fmt.Stringer, so that a message can name another file lazily.
type at func() string

// String returns the path ("" for nil).
func (a at) String() string {
	if a == nil {
		return ""
	}
	return a()
}

// label is an at for a fixed name.
func label(s string) at { return func() string { return s } }

// lazy is an at for any string worth making only when a problem is
// recorded (an escaped xattr value).
func lazy(f func() string) at { return f }

// link is the directory entry through which an inode was first reached.
type link struct {
	parent uint64
	name   string
}

// at returns where inode nid is: the path through which it was first
// reached, escaped as in composefs-dump(5) and shortened.
func (v *verifier) at(nid uint64) at {
	return func() string { return esc(v.rawPath(nid)) }
}

// entryAt returns where the entry name of directory dir is.
func (v *verifier) entryAt(dir uint64, name string) at {
	return func() string { return esc(entryPath(v.rawPath(dir), name)) }
}

// rawPath makes the path of inode nid from the links recorded on the
// way (each recorded after its parent's: they lead to the root).
func (v *verifier) rawPath(nid uint64) string {
	var names []string
	for nid != v.img.RootNid() {
		l, ok := v.links[nid]
		if !ok {
			break
		}
		names = append(names, l.name)
		nid = l.parent
	}
	if len(names) == 0 {
		return "/"
	}
	var b strings.Builder
	for i := len(names) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(names[i])
	}
	return b.String()
}

func (v *verifier) problem(where at, nid *uint64, off *int64, what, format string, a ...any) {
	r := v.report
	if len(r.Problems) >= v.opts.MaxProblems {
		r.Omitted++
		return
	}
	r.Problems = append(r.Problems, Problem{Path: where.String(), Nid: nid, Offset: off, What: what, Why: fmt.Sprintf(format, a...)})
}

// errProblem reports a reader error, taking the nid and offset from it.
func (v *verifier) errProblem(path at, what string, err error) {
	var e *erofs.Error
	if errors.As(err, &e) {
		var nid *uint64
		var off *int64
		if e.HasNid {
			nid = ptr(e.Nid)
		}
		if e.Offset >= 0 {
			off = ptr(e.Offset)
		}
		v.problem(path, nid, off, what, "%s", strings.TrimPrefix(errText(e), "erofs: "))
		return
	}
	v.problem(path, nil, nil, what, "%v", err)
}

// errText is an erofs error's message without its location (reported
// separately).
func errText(e *erofs.Error) string {
	s := e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// spend takes n from the work budget; when it is exhausted the check
// stops with one problem saying so.
func (v *verifier) spend(n int64) bool {
	if v.stopped {
		return false
	}
	v.budget -= n
	if v.budget < 0 {
		v.stopped = true
		v.problem(nil, nil, nil, "limit", "the image needs more work to check than its size justifies (overlapping or repeated structures); check stopped")
		return false
	}
	return true
}

func (v *verifier) run() (*Report, error) {
	v.checkHeader()
	img, err := erofs.Open(v.r, v.size)
	if err != nil {
		var e *erofs.Error
		if !errors.As(err, &e) && !errors.Is(err, erofs.ErrCorrupt) {
			return nil, err
		}
		v.errProblem(nil, "superblock", err)
		return v.finish()
	}
	v.img = img
	v.checkSuper()
	v.walk()
	if !v.stopped {
		v.checkRegions()
		if v.cfs {
			if hdr, _ := img.Composefs(); v.hasACL && hdr.Flags&erofs.ComposefsFlagHasACL == 0 {
				v.problem(nil, nil, ptr(int64(8)), "header", "the image has POSIX ACLs but the header lacks the has-ACL flag, so they would be ignored")
			}
		}
	}
	if err := v.checkObjects(); err != nil {
		return nil, err
	}
	if err := v.checkImageDigest(); err != nil {
		return nil, err
	}
	return v.finish()
}

func (v *verifier) finish() (*Report, error) {
	v.report.OK = len(v.report.Problems) == 0 && v.report.Omitted == 0
	return v.report, nil
}

// checkHeader checks the composefs header.
func (v *verifier) checkHeader() {
	var b [erofs.ComposefsHeaderSize]byte
	if v.size < erofs.BlockSize {
		v.problem(nil, nil, nil, "header", "image of %d bytes is smaller than a block", v.size)
	}
	if n, _ := v.r.ReadAt(b[:], 0); n < len(b) {
		v.problem(nil, nil, ptr(int64(0)), "header", "no composefs header: file too short")
		return
	}
	var h erofs.ComposefsHeader
	decodeHeader(b[:], &h)
	if h.Magic != erofs.ComposefsMagic {
		v.problem(nil, nil, ptr(int64(0)), "header", "no composefs header: magic %#08x, want %#08x", h.Magic, uint32(erofs.ComposefsMagic))
		return
	}
	v.cfs = true
	v.report.Composefs = true
	v.report.Version = int(h.ComposefsVersion)
	if h.Version != erofs.ComposefsHeaderVersion {
		v.problem(nil, nil, ptr(int64(4)), "header", "composefs header version %d, want %d", h.Version, erofs.ComposefsHeaderVersion)
	}
	if h.ComposefsVersion > schema.MaxVersion {
		v.problem(nil, nil, ptr(int64(12)), "header", "unknown composefs format version %d", h.ComposefsVersion)
	}
	if bad := h.Flags &^ erofs.ComposefsFlagHasACL; bad != 0 {
		v.problem(nil, nil, ptr(int64(8)), "header", "unknown header flags %#x", bad)
	}
	for i, u := range h.Unused {
		if u != 0 {
			v.problem(nil, nil, ptr(int64(16+4*i)), "header", "reserved header field is %#x, not zero", u)
		}
	}
}

func decodeHeader(b []byte, h *erofs.ComposefsHeader) {
	binary.Decode(b, binary.LittleEndian, h)
}

// checkSuper checks what erofs.Open leaves to the caller.
func (v *verifier) checkSuper() {
	sb := v.img.SuperBlock()
	at := func(field int64) *int64 { return ptr(erofs.SuperOffset + field) }
	if sb.BlkSzBits != erofs.BlockSizeBits {
		v.problem(nil, nil, at(12), "superblock", "block size 2^%d, composefs uses 2^%d", sb.BlkSzBits, erofs.BlockSizeBits)
	}
	const knownCompat = erofs.FeatureCompatSBChksum | erofs.FeatureCompatMtime | erofs.FeatureCompatXattrFilter
	if bad := sb.FeatureCompat &^ knownCompat; bad != 0 {
		v.problem(nil, nil, at(8), "feature", "unknown compatible feature bits %#x", bad)
	}
	v.filter = sb.FeatureCompat&erofs.FeatureCompatXattrFilter != 0
	blk := v.img.BlockSize()
	if end := int64(sb.Blocks) * blk; end > v.size {
		v.problem(nil, nil, at(36), "superblock", "superblock claims %d blocks (%d bytes) but the image has %d bytes", sb.Blocks, end, v.size)
	} else if end < v.size {
		v.problem(nil, nil, at(36), "superblock", "%d bytes after the superblock's %d blocks", v.size-end, sb.Blocks)
	}
	if x := v.img.SharedXattrOffset(); x > v.size {
		v.problem(nil, nil, at(44), "superblock", "xattr_blkaddr %d beyond the end of the image", sb.XattrBlkAddr)
	}
	v.regions = append(v.regions, region{erofs.SuperOffset, erofs.SuperOffset + erofs.SuperBlockSize, regionSuper, label("superblock")})
	if v.cfs {
		v.regions = append(v.regions, region{0, erofs.ComposefsHeaderSize, regionSuper, label("composefs header")})
	}
}

// errStopped ends the walk when the work budget is spent.
var errStopped = errors.New("verify: check stopped")

// walk checks every inode reachable from the root, depth first (erofs's
// Walk, which enters each directory once and never recurses). Paths are
// not made on the way: each inode's entry is recorded, and a problem's
// path made from them.
func (v *verifier) walk() {
	err := v.img.Walk(func(e *erofs.WalkEntry) ([]erofs.DirEntry, error) {
		if v.stopped {
			return nil, errStopped
		}
		if e.Depth > 0 {
			if t, seen := v.types[e.Nid]; seen {
				if t == erofs.ModeDir {
					v.problem(v.entryAt(e.Parent, e.Name), ptr(e.Nid), nil, "hardlink", "directory already reached through another entry (directory hard link or cycle)")
				} else {
					v.report.Stats.HardLinks++
				}
				return nil, nil
			}
			v.links[e.Nid] = link{e.Parent, e.Name}
		}
		return v.inode(e.Nid, e.Parent), nil
	})
	if err != nil && err != errStopped {
		v.errProblem(nil, "limit", err)
	}
}

// esc returns path escaped as in composefs-dump(5) and shortened
// (schema.Shorten).
func esc(path string) string {
	return schema.Shorten(string(dump.AppendEscaped(nil, []byte(path))))
}

// entryPath returns the path of entry name of directory dir.
func entryPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// fileTypes maps inode types to the dirent file type the kernel expects.
var fileTypes = map[uint32]uint8{
	erofs.ModeRegular: erofs.FTRegFile,
	erofs.ModeDir:     erofs.FTDir,
	erofs.ModeChar:    erofs.FTChrdev,
	erofs.ModeBlock:   erofs.FTBlkdev,
	erofs.ModeFIFO:    erofs.FTFifo,
	erofs.ModeSocket:  erofs.FTSock,
	erofs.ModeSymlink: erofs.FTSymlink,
}

// inode checks inode nid, reached from directory parent, and returns the
// entries to walk when it is a directory.
func (v *verifier) inode(nid, parent uint64) []erofs.DirEntry {
	epath := v.at(nid)
	in, err := v.img.Inode(nid)
	if err != nil {
		v.errProblem(epath, "inode", err)
		return nil
	}
	typ := in.Type()
	v.types[nid] = typ
	v.report.Stats.Inodes++
	pnid := ptr(nid)
	poff := ptr(in.Offset)
	if _, ok := fileTypes[typ]; !ok {
		v.problem(epath, pnid, poff, "mode", "invalid file type in mode %#o", in.Mode)
		return nil
	}
	if in.Compressed() {
		v.problem(epath, pnid, poff, "layout", "compressed data layout %d", in.Layout)
	}
	quirk := v.outOfLineChunkIndex(in)
	meta, err := in.MetaSize()
	if quirk {
		meta = in.InodeSize() + in.XattrSize()
	} else if err != nil {
		v.errProblem(epath, "layout", err)
		meta = in.InodeSize() + in.XattrSize()
	}
	if !v.spend(meta) {
		return nil
	}
	v.regions = append(v.regions, region{in.Offset, in.Offset + meta, regionMeta, epath})
	v.checkXattrs(epath, in)
	switch typ {
	case erofs.ModeDir:
		v.report.Stats.Directories++
	case erofs.ModeRegular:
		v.report.Stats.Files++
	case erofs.ModeSymlink:
		v.report.Stats.Symlinks++
		v.checkSymlink(epath, in)
	default:
		v.report.Stats.Others++
		if v.cfs && typ == erofs.ModeChar && in.Rdev == 0 && in.Nlink > 1 {
			v.problem(epath, pnid, poff, "whiteout", "whiteout with %d links (composefs refuses hard-linked whiteouts)", in.Nlink)
		}
		if in.Size != 0 {
			v.problem(epath, pnid, poff, "size", "special file with size %d", in.Size)
		}
		if in.Layout != erofs.LayoutFlatPlain && !in.Compressed() {
			v.problem(epath, pnid, poff, "layout", "special file with data layout %d", in.Layout)
		}
		return nil
	}
	// The chunk walk below is bounded by the chunk index, part of meta.
	var exts []erofs.Extent
	if !quirk {
		exts, err = in.Extents()
		if err != nil {
			v.errProblem(epath, "extent", err)
		}
	}
	blocksEnd := int64(v.img.SuperBlock().Blocks) * v.img.BlockSize()
	for _, e := range exts {
		if e.Physical < 0 || e.Inline {
			continue
		}
		if e.Physical+e.Length > blocksEnd && blocksEnd <= v.size {
			v.problem(epath, pnid, ptr(e.Physical), "extent", "data at %d+%d beyond the superblock's block count", e.Physical, e.Length)
		}
		v.regions = append(v.regions, region{e.Physical, e.Physical + e.Length, regionData, epath})
	}
	if typ != erofs.ModeDir {
		return nil
	}
	return v.dir(in, parent)
}

// outOfLineChunkIndex reports an upstream writer quirk the check
// tolerates: for a file so large (over 8 TiB) that its chunk index does
// not fit in the rest of the inode's block, mkcomposefs puts the index in a
// data block the inode does not point to, so the kernel reads the bytes
// after the inode as the index. Composefs files hold no data in the image
// (their content comes from the object store), so nothing of the kernel's
// mapping is checked for them.
func (v *verifier) outOfLineChunkIndex(in *erofs.Inode) bool {
	if !v.cfs || !in.IsRegular() || in.Layout != erofs.LayoutChunkBased {
		return false
	}
	format := uint16(in.RawBlkAddr)
	if format&^(erofs.ChunkFormatBlkbitsMask|erofs.ChunkFormatIndexes) != 0 {
		return false
	}
	bits := uint(v.img.SuperBlock().BlkSzBits) + uint(format&erofs.ChunkFormatBlkbitsMask)
	unit := uint64(erofs.BlockMapEntrySize)
	if format&erofs.ChunkFormatIndexes != 0 {
		unit = erofs.ChunkIndexSize
	}
	n := in.Size >> bits
	if in.Size&(1<<bits-1) != 0 {
		n++
	}
	blk := uint64(v.img.BlockSize())
	idx := uint64(in.Offset+in.InodeSize()+in.XattrSize()+int64(unit)-1) &^ (unit - 1)
	return idx%blk+n*unit > blk
}

// dir checks the entries of a directory and returns those to walk: the
// ones naming a usable inode, without "." and "..".
func (v *verifier) dir(in *erofs.Inode, parent uint64) []erofs.DirEntry {
	epath := v.at(in.Nid)
	pnid := ptr(in.Nid)
	if in.Size == 0 {
		v.problem(epath, pnid, ptr(in.Offset), "dirent", "empty directory data (no \".\" and \"..\")")
		return nil
	}
	if in.Size > uint64(v.size) || !v.spend(int64(in.Size)) {
		if !v.stopped {
			v.problem(epath, pnid, ptr(in.Offset), "dirent", "directory of %d bytes larger than the image", in.Size)
		}
		return nil
	}
	d := dirCheck{v: v, epath: epath, in: in, parent: parent, walk: []erofs.DirEntry{}}
	if err := in.ReadDirBlocks(d.block); err != nil {
		v.errProblem(epath, "dirent", err)
	}
	if !d.dot {
		v.problem(epath, pnid, nil, "dirent", "no \".\" entry")
	}
	if !d.dotdot {
		v.problem(epath, pnid, nil, "dirent", "no \"..\" entry")
	}
	return d.walk
}

// dirCheck is the check of one directory's entries, block by block.
type dirCheck struct {
	v           *verifier
	epath       at
	in          *erofs.Inode
	parent      uint64
	prev        string
	havePrev    bool
	dot, dotdot bool
	walk        []erofs.DirEntry
}

// block checks the entries of one directory block (at directory offset
// off): their order, names and file types, and "." and "..".
func (d *dirCheck) block(off int64, ents []erofs.DirEntry, err error) error {
	v, pnid := d.v, ptr(d.in.Nid)
	if err != nil {
		v.errProblem(d.epath, "dirent", err)
		d.havePrev = false
		return nil
	}
	for _, e := range ents {
		if d.havePrev && e.Name <= d.prev {
			v.problem(v.entryAt(d.in.Nid, e.Name), pnid, nil, "order", "entry at directory offset %d is not after %q: names must be sorted for lookups", off, d.prev)
		}
		d.prev, d.havePrev = e.Name, true
		switch e.Name {
		case ".":
			d.dot = d.dotEntry(e, d.dot, d.in.Nid, "the directory itself")
			continue
		case "..":
			d.dotdot = d.dotEntry(e, d.dotdot, d.parent, fmt.Sprintf("the parent (nid %d)", d.parent))
			continue
		}
		if strings.ContainsAny(e.Name, "/\x00") {
			v.problem(v.entryAt(d.in.Nid, e.Name), pnid, nil, "name", "name contains '/' or NUL")
		}
		if v.checkFileType(d.in.Nid, e) != nil {
			continue
		}
		d.walk = append(d.walk, e)
	}
	return nil
}

// dotEntry checks a "." or ".." entry, which must be the only one of its
// name, point to want and be a directory. It returns true (now seen).
func (d *dirCheck) dotEntry(e erofs.DirEntry, seen bool, want uint64, what string) bool {
	v, pnid := d.v, ptr(d.in.Nid)
	if seen {
		v.problem(d.epath, pnid, nil, "dirent", "duplicate %q entry", e.Name)
	}
	if e.Nid != want {
		v.problem(d.epath, pnid, nil, "dirent", "%q points to nid %d, not to %s", e.Name, e.Nid, what)
	}
	if e.FileType != erofs.FTDir {
		v.problem(d.epath, pnid, nil, "filetype", "%q has file type %d", e.Name, e.FileType)
	}
	return true
}

// checkFileType checks that entry e of directory dir names a valid inode
// of the type its file_type says. It returns an error when the inode is
// unusable.
func (v *verifier) checkFileType(dir uint64, e erofs.DirEntry) error {
	typ, seen := v.types[e.Nid]
	if !seen {
		in, err := v.img.Inode(e.Nid)
		if err != nil {
			v.errProblem(v.entryAt(dir, e.Name), "inode", err)
			return err
		}
		typ = in.Type()
	}
	want, ok := fileTypes[typ]
	if ok && e.FileType != want {
		v.problem(v.entryAt(dir, e.Name), ptr(e.Nid), nil, "filetype", "directory entry says file type %d, the inode is type %d (mode %#o)", e.FileType, want, typ)
	}
	return nil
}

func (v *verifier) checkSymlink(path at, in *erofs.Inode) {
	if in.Size == 0 || in.Size > erofs.MaxSymlinkLen {
		v.problem(path, ptr(in.Nid), ptr(in.Offset), "symlink", "target of %d bytes (must be 1 to %d)", in.Size, erofs.MaxSymlinkLen)
		return
	}
	t, err := in.Readlink()
	if err != nil {
		v.errProblem(path, "symlink", err)
		return
	}
	if strings.IndexByte(t, 0) >= 0 {
		v.problem(path, ptr(in.Nid), ptr(in.Offset), "symlink", "target contains a NUL byte")
	}
}

// xACL starts the names of POSIX ACL xattrs.
const xACL = "system.posix_acl_"

// checkXattrs checks an inode's xattrs: the area, each name, and the
// overlayfs xattrs composefs writes.
func (v *verifier) checkXattrs(path at, in *erofs.Inode) {
	if in.XattrCount == 0 {
		return
	}
	xs, ok := v.inodeXattrs(path, in)
	if !ok {
		return
	}
	filter, hasFilter, _ := in.XattrFilter()
	names := make(map[string]bool, len(xs))
	var redirect, metacopy *erofs.Xattr
	for i := range xs {
		x := &xs[i]
		name := x.FullName()
		v.checkXattrName(path, in, x, names, hasFilter, filter)
		names[name] = true
		if strings.HasPrefix(name, xACL) {
			v.hasACL = true
		}
		if !v.cfs {
			continue
		}
		switch name {
		case schema.Redirect:
			redirect = x
		case schema.Metacopy:
			metacopy = x
		case schema.Opaque:
			if in.Type() != erofs.ModeDir {
				v.problem(path, ptr(in.Nid), ptr(x.Offset), "xattr", "%s on a non-directory", name)
			}
		default:
			if _, shown := schema.Unescape(name); !shown {
				v.problem(path, ptr(in.Nid), ptr(x.Offset), "xattr", "overlayfs xattr %q that composefs never writes (user xattrs are stored escaped as %s*)", name, schema.EscapePrefix)
			}
		}
	}
	if redirect != nil || metacopy != nil {
		v.checkOverlayFile(path, in, redirect, metacopy)
	}
}

// inodeXattrs returns an inode's inline and shared xattrs, reporting those
// that can't be read. The shared ones are decoded once for all inodes. ok
// is false when the work budget ran out.
func (v *verifier) inodeXattrs(path at, in *erofs.Inode) (xs []erofs.Xattr, ok bool) {
	pnid := ptr(in.Nid)
	areaOff, areaSize := in.XattrArea()
	if areaSize == erofs.XattrHeaderSize {
		v.problem(path, pnid, ptr(areaOff), "xattr", "xattr area with a header only (xattr_icount 1), which the kernel refuses")
	}
	xs, err := in.InlineXattrs()
	if err != nil {
		v.errProblem(path, "xattr", err)
	}
	ids, err := in.SharedXattrIDs()
	if err != nil {
		v.errProblem(path, "xattr", err)
	}
	for _, id := range ids {
		si := v.shared[id]
		if si == nil {
			si = &sharedInfo{}
			si.x, si.err = v.img.SharedXattr(id)
			v.shared[id] = si
			if si.err == nil {
				size := int64(erofs.XattrEntrySize + len(si.x.Name) + len(si.x.Value))
				if !v.spend(size) {
					return nil, false
				}
				v.regions = append(v.regions, region{si.x.Offset, si.x.Offset + size, regionMeta, label(fmt.Sprintf("shared xattr %d", id))})
			}
		}
		if si.err != nil {
			v.problem(path, pnid, ptr(areaOff), "xattr", "shared xattr id %d: %v", id, si.err)
			continue
		}
		xs = append(xs, si.x)
	}
	return xs, true
}

// checkXattrName checks one xattr's name: not empty, no NUL, not a
// duplicate of one in names, and not hidden by the inode's name filter.
func (v *verifier) checkXattrName(path at, in *erofs.Inode, x *erofs.Xattr, names map[string]bool, hasFilter bool, filter uint32) {
	pnid, off := ptr(in.Nid), ptr(x.Offset)
	name := x.FullName()
	if name == "" {
		v.problem(path, pnid, off, "xattr", "empty xattr name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		v.problem(path, pnid, off, "xattr", "xattr name %q contains a NUL byte", name)
	}
	if names[name] {
		v.problem(path, pnid, off, "xattr", "duplicate xattr %q", name)
	}
	if v.filter && hasFilter && x.Index != 0 {
		bit := erofs.XattrFilterHash([]byte(x.Name), erofs.XattrFilterSeed+uint32(x.Index)) & (erofs.XattrFilterBits - 1)
		if filter&(1<<bit) != 0 {
			v.problem(path, pnid, off, "xattr", "the name filter hides xattr %q from the kernel", name)
		}
	}
}

// checkOverlayFile checks a file's redirect and metacopy xattrs (either
// may be nil), and records the object the redirect names.
func (v *verifier) checkOverlayFile(path at, in *erofs.Inode, redirect, metacopy *erofs.Xattr) {
	pnid := ptr(in.Nid)
	if !in.IsRegular() {
		v.problem(path, pnid, nil, "xattr", "overlayfs redirect or metacopy xattr on a non-regular file")
		return
	}
	var d digest.Digest
	if metacopy != nil {
		var err error
		if d, err = schema.ParseMetacopy(metacopy.Value); err != nil {
			v.problem(path, pnid, ptr(metacopy.Offset), "metacopy", "%s", schemaReason(err))
		}
		if in.Layout == erofs.LayoutFlatInline || (in.Layout == erofs.LayoutFlatPlain && in.Size > 0) {
			v.problem(path, pnid, nil, "metacopy", "metacopy file that also has data in the image")
		}
	}
	if redirect == nil {
		return
	}
	if metacopy == nil {
		v.problem(path, pnid, nil, "redirect", "redirect without metacopy: overlayfs ignores it")
	}
	obj, err := schema.ParseRedirect(redirect.Value)
	if err != nil {
		v.problem(path, pnid, ptr(redirect.Offset), "redirect", "redirect %s is not an object path /XX/<62 or 126 hex digits>", lazy(func() string { return esc(string(redirect.Value)) }))
		return
	}
	if !d.IsZero() && obj != d {
		v.problem(path, pnid, nil, "redirect", "redirect %s does not match the metacopy digest %s", obj.ObjectPath(), d.Hex())
	}
	v.useObject(path, in, obj, d)
}

// useObject records that the file at path uses object obj with metacopy
// digest d (zero: none), and reports uses that disagree on its size or
// digest.
func (v *verifier) useObject(path at, in *erofs.Inode, obj, d digest.Digest) {
	pnid := ptr(in.Nid)
	o := v.objects[obj]
	if o == nil {
		v.objects[obj] = &object{path: path, size: in.Size, digest: d}
		return
	}
	if o.size != in.Size {
		v.problem(path, pnid, nil, "object", "object %s used with size %d here and %d by %s", obj.ObjectPath(), in.Size, o.size, o.path)
	}
	if !d.IsZero() && !o.digest.IsZero() && d != o.digest {
		v.problem(path, pnid, nil, "object", "object %s used with two different digests (also by %s)", obj.ObjectPath(), o.path)
	}
	if o.digest.IsZero() {
		o.digest = d
	}
}

// schemaReason is a schema error's message without its sentinel's.
func schemaReason(err error) string {
	return strings.TrimPrefix(err.Error(), schema.ErrInvalid.Error()+": ")
}

// checkRegions reports overlapping regions, and, for composefs images,
// data blocks inside the metadata area.
func (v *verifier) checkRegions() {
	rs := v.regions
	slices.SortFunc(rs, func(a, b region) int {
		if a.start != b.start {
			if a.start < b.start {
				return -1
			}
			return 1
		}
		return int(a.end - b.end)
	})
	var metaEnd int64
	for _, r := range rs {
		if r.kind != regionData {
			metaEnd = max(metaEnd, r.end)
		}
	}
	kind := [...]string{"superblock", "metadata", "data"}
	last := -1 // region reaching furthest so far
	for i, r := range rs {
		if r.end == r.start {
			continue
		}
		if last >= 0 && r.start < rs[last].end {
			l := rs[last]
			v.problem(r.owner, nil, ptr(r.start), "overlap", "%s at %d+%d overlaps %s of %s at %d+%d", kind[r.kind], r.start, r.end-r.start, kind[l.kind], l.owner, l.start, l.end-l.start)
		}
		if last < 0 || r.end > rs[last].end {
			last = i
		}
		if v.cfs && r.kind == regionData && r.start < metaEnd {
			v.problem(r.owner, nil, ptr(r.start), "extent", "data block at %d inside the metadata area (which ends at %d)", r.start, metaEnd)
		}
	}
}

// checkImageDigest compares the image's fs-verity digest with
// Options.Digest.
func (v *verifier) checkImageDigest() error {
	if v.opts.Digest == nil {
		return nil
	}
	d := v.imageDigest
	if d == nil {
		var err error
		d, err = fsverity.DigestReaderAt(context.Background(), v.r, v.size, fsverity.SHA256, 0)
		if err != nil {
			return err
		}
	}
	if !bytes.Equal(d, v.opts.Digest) {
		v.problem(nil, nil, nil, "digest", "image fs-verity digest is %s, expected %s", fsverity.Hex(d), fsverity.Hex(v.opts.Digest))
	}
	return nil
}
