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
// writes: redirects that stay inside the object store and name a digest,
// well-formed metacopy values).
//
// With an object store (Options.Basedir), every object a redirect names
// must exist, be a regular file of the inode's size and, when the image
// records a digest, have that fs-verity digest (measured by the kernel when
// the object has fs-verity, computed otherwise). With Options.Digest, the
// image's own fs-verity digest must match.
//
// Problems do not stop the check: the [Report] lists every one found, with
// the path, what is wrong and why. The work done is bounded by the image
// size, so a hostile image can't make the check hang or use unbounded
// memory.
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
//	object      an object missing from the store, not a regular file, or of the wrong size
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
	"path/filepath"
	"slices"
	"strings"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
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
// computed otherwise. The error reports failures to read the file, not
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
		alg, d, err := fsverity.Measure(f)
		if err == nil && alg == fsverity.SHA256 {
			measured = d
		} else if err != nil && !errors.Is(err, fsverity.ErrNotEnabled) && !errors.Is(err, fsverity.ErrNotSupported) {
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
		shared:  make(map[uint32]*sharedInfo),
		objects: make(map[string]*object),
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
	shared  map[uint32]*sharedInfo
	objects map[string]*object
	regions []region
	hasACL  bool
	filter  bool // the superblock has the xattr name filter
}

type sharedInfo struct {
	x   erofs.Xattr
	err error
}

type object struct {
	path   string // first file using it
	size   uint64
	digest []byte
}

// region is a byte range of the image with its use.
type region struct {
	start, end int64
	kind       int
	owner      string
}

const (
	regionSuper = iota
	regionMeta
	regionData
)

func (v *verifier) problem(path string, nid *uint64, off *int64, what, format string, a ...any) {
	r := v.report
	if len(r.Problems) >= v.opts.MaxProblems {
		r.Omitted++
		return
	}
	r.Problems = append(r.Problems, Problem{Path: path, Nid: nid, Offset: off, What: what, Why: fmt.Sprintf(format, a...)})
}

// errProblem reports a reader error, taking the nid and offset from it.
func (v *verifier) errProblem(path, what string, err error) {
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
		v.problem("", nil, nil, "limit", "the image needs more work to check than its size justifies (overlapping or repeated structures); check stopped")
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
		v.errProblem("", "superblock", err)
		return v.finish()
	}
	v.img = img
	v.checkSuper()
	v.walk()
	if !v.stopped {
		v.checkRegions()
		if v.cfs {
			if hdr, _ := img.Composefs(); v.hasACL && hdr.Flags&erofs.ComposefsFlagHasACL == 0 {
				v.problem("", nil, ptr(int64(8)), "header", "the image has POSIX ACLs but the header lacks the has-ACL flag, so they would be ignored")
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
		v.problem("", nil, nil, "header", "image of %d bytes is smaller than a block", v.size)
	}
	if n, _ := v.r.ReadAt(b[:], 0); n < len(b) {
		v.problem("", nil, ptr(int64(0)), "header", "no composefs header: file too short")
		return
	}
	var h erofs.ComposefsHeader
	decodeHeader(b[:], &h)
	if h.Magic != erofs.ComposefsMagic {
		v.problem("", nil, ptr(int64(0)), "header", "no composefs header: magic %#08x, want %#08x", h.Magic, uint32(erofs.ComposefsMagic))
		return
	}
	v.cfs = true
	v.report.Composefs = true
	v.report.Version = int(h.ComposefsVersion)
	if h.Version != erofs.ComposefsHeaderVersion {
		v.problem("", nil, ptr(int64(4)), "header", "composefs header version %d, want %d", h.Version, erofs.ComposefsHeaderVersion)
	}
	if h.ComposefsVersion > maxComposefsVersion {
		v.problem("", nil, ptr(int64(12)), "header", "unknown composefs format version %d", h.ComposefsVersion)
	}
	if bad := h.Flags &^ erofs.ComposefsFlagHasACL; bad != 0 {
		v.problem("", nil, ptr(int64(8)), "header", "unknown header flags %#x", bad)
	}
	for i, u := range h.Unused {
		if u != 0 {
			v.problem("", nil, ptr(int64(16+4*i)), "header", "reserved header field is %#x, not zero", u)
		}
	}
}

func decodeHeader(b []byte, h *erofs.ComposefsHeader) {
	binary.Decode(b, binary.LittleEndian, h)
}

// maxComposefsVersion is the newest composefs format version.
const maxComposefsVersion = 1

// checkSuper checks what erofs.Open leaves to the caller.
func (v *verifier) checkSuper() {
	sb := v.img.SuperBlock()
	at := func(field int64) *int64 { return ptr(erofs.SuperOffset + field) }
	if sb.BlkSzBits != erofs.BlockSizeBits {
		v.problem("", nil, at(12), "superblock", "block size 2^%d, composefs uses 2^%d", sb.BlkSzBits, erofs.BlockSizeBits)
	}
	const knownCompat = erofs.FeatureCompatSBChksum | erofs.FeatureCompatMtime | erofs.FeatureCompatXattrFilter
	if bad := sb.FeatureCompat &^ knownCompat; bad != 0 {
		v.problem("", nil, at(8), "feature", "unknown compatible feature bits %#x", bad)
	}
	v.filter = sb.FeatureCompat&erofs.FeatureCompatXattrFilter != 0
	blk := v.img.BlockSize()
	if end := int64(sb.Blocks) * blk; end > v.size {
		v.problem("", nil, at(36), "superblock", "superblock claims %d blocks (%d bytes) but the image has %d bytes", sb.Blocks, end, v.size)
	} else if end < v.size {
		v.problem("", nil, at(36), "superblock", "%d bytes after the superblock's %d blocks", v.size-end, sb.Blocks)
	}
	if x := v.img.SharedXattrOffset(); x > v.size {
		v.problem("", nil, at(44), "superblock", "xattr_blkaddr %d beyond the end of the image", sb.XattrBlkAddr)
	}
	v.regions = append(v.regions, region{erofs.SuperOffset, erofs.SuperOffset + erofs.SuperBlockSize, regionSuper, "superblock"})
	if v.cfs {
		v.regions = append(v.regions, region{0, erofs.ComposefsHeaderSize, regionSuper, "composefs header"})
	}
}

// frame is a directory being checked.
type frame struct {
	path string
	nid  uint64
	ents []erofs.DirEntry
	next int
}

// walk checks every inode reachable from the root, depth first.
func (v *verifier) walk() {
	rootNid := v.img.RootNid()
	root := v.inode("/", rootNid, rootNid)
	if root == nil {
		return
	}
	stack := []*frame{root}
	for len(stack) > 0 && !v.stopped {
		top := stack[len(stack)-1]
		if top.next == len(top.ents) {
			stack = stack[:len(stack)-1]
			continue
		}
		e := top.ents[top.next]
		top.next++
		if e.Name == "." || e.Name == ".." {
			continue
		}
		path := top.path + "/" + e.Name
		if top.path == "/" {
			path = "/" + e.Name
		}
		if t, seen := v.types[e.Nid]; seen {
			if t == erofs.ModeDir {
				v.problem(esc(path), ptr(e.Nid), nil, "hardlink", "directory already reached through another entry (directory hard link or cycle)")
			} else {
				v.report.Stats.HardLinks++
			}
			continue
		}
		if f := v.inode(path, e.Nid, top.nid); f != nil {
			stack = append(stack, f)
		}
	}
}

func esc(path string) string { return string(dump.AppendEscaped(nil, []byte(path))) }

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

// inode checks inode nid, reached at path from directory parent, and
// returns a frame for its entries when it is a directory.
func (v *verifier) inode(path string, nid, parent uint64) *frame {
	epath := esc(path)
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
	return v.dir(path, in, parent)
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

// dir checks the entries of a directory and returns its frame.
func (v *verifier) dir(path string, in *erofs.Inode, parent uint64) *frame {
	epath := esc(path)
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
	f := &frame{path: path, nid: in.Nid}
	var prev string
	var havePrev, dot, dotdot bool
	err := in.ReadDirBlocks(func(off int64, ents []erofs.DirEntry, err error) error {
		if err != nil {
			v.errProblem(epath, "dirent", err)
			havePrev = false
			return nil
		}
		for _, e := range ents {
			ep := esc(path + "/" + e.Name)
			if path == "/" {
				ep = esc("/" + e.Name)
			}
			if havePrev && e.Name <= prev {
				v.problem(ep, pnid, nil, "order", "entry at directory offset %d is not after %q: names must be sorted for lookups", off, prev)
			}
			prev, havePrev = e.Name, true
			switch e.Name {
			case ".":
				if dot {
					v.problem(epath, pnid, nil, "dirent", "duplicate \".\" entry")
				}
				dot = true
				if e.Nid != in.Nid {
					v.problem(epath, pnid, nil, "dirent", "\".\" points to nid %d, not to the directory itself", e.Nid)
				}
				if e.FileType != erofs.FTDir {
					v.problem(epath, pnid, nil, "filetype", "\".\" has file type %d", e.FileType)
				}
				continue
			case "..":
				if dotdot {
					v.problem(epath, pnid, nil, "dirent", "duplicate \"..\" entry")
				}
				dotdot = true
				if e.Nid != parent {
					v.problem(epath, pnid, nil, "dirent", "\"..\" points to nid %d, not to the parent (nid %d)", e.Nid, parent)
				}
				if e.FileType != erofs.FTDir {
					v.problem(epath, pnid, nil, "filetype", "\"..\" has file type %d", e.FileType)
				}
				continue
			}
			if strings.ContainsAny(e.Name, "/\x00") {
				v.problem(ep, pnid, nil, "name", "name contains '/' or NUL")
			}
			if err := v.checkFileType(ep, e); err != nil {
				continue
			}
			f.ents = append(f.ents, e)
		}
		return nil
	})
	if err != nil {
		v.errProblem(epath, "dirent", err)
	}
	if !dot {
		v.problem(epath, pnid, nil, "dirent", "no \".\" entry")
	}
	if !dotdot {
		v.problem(epath, pnid, nil, "dirent", "no \"..\" entry")
	}
	return f
}

// checkFileType checks that entry e names a valid inode of the type its
// file_type says. It returns an error when the inode is unusable.
func (v *verifier) checkFileType(path string, e erofs.DirEntry) error {
	typ, seen := v.types[e.Nid]
	if !seen {
		in, err := v.img.Inode(e.Nid)
		if err != nil {
			v.errProblem(path, "inode", err)
			return err
		}
		typ = in.Type()
	}
	want, ok := fileTypes[typ]
	if ok && e.FileType != want {
		v.problem(path, ptr(e.Nid), nil, "filetype", "directory entry says file type %d, the inode is type %d (mode %#o)", e.FileType, want, typ)
	}
	return nil
}

func (v *verifier) checkSymlink(path string, in *erofs.Inode) {
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

// Overlay xattrs composefs writes unescaped.
const (
	xRedirect = "trusted.overlay.redirect"
	xMetacopy = "trusted.overlay.metacopy"
	xOpaque   = "trusted.overlay.opaque"
	xOverlay  = "trusted.overlay."
	xEscaped  = "trusted.overlay.overlay."
	xACL      = "system.posix_acl_"
)

func (v *verifier) checkXattrs(path string, in *erofs.Inode) {
	pnid := ptr(in.Nid)
	if in.XattrCount == 0 {
		return
	}
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
				if !v.spend(int64(erofs.XattrEntrySize + len(si.x.Name) + len(si.x.Value))) {
					return
				}
				end := si.x.Offset + int64(erofs.XattrEntrySize+len(si.x.Name)+len(si.x.Value))
				v.regions = append(v.regions, region{si.x.Offset, end, regionMeta, fmt.Sprintf("shared xattr %d", id)})
			}
		}
		if si.err != nil {
			v.problem(path, pnid, ptr(areaOff), "xattr", "shared xattr id %d: %v", id, si.err)
			continue
		}
		xs = append(xs, si.x)
	}
	filter, hasFilter, _ := in.XattrFilter()
	names := make(map[string]bool, len(xs))
	var redirect, metacopy []byte
	var hasRedirect, hasMetacopy bool
	isReg := in.IsRegular()
	for i := range xs {
		x := &xs[i]
		name := x.FullName()
		off := ptr(x.Offset)
		if name == "" {
			v.problem(path, pnid, off, "xattr", "empty xattr name")
		}
		if strings.IndexByte(name, 0) >= 0 {
			v.problem(path, pnid, off, "xattr", "xattr name %q contains a NUL byte", name)
		}
		if names[name] {
			v.problem(path, pnid, off, "xattr", "duplicate xattr %q", name)
		}
		names[name] = true
		if v.filter && hasFilter && x.Index != 0 {
			bit := erofs.XattrFilterHash([]byte(x.Name), erofs.XattrFilterSeed+uint32(x.Index)) & (erofs.XattrFilterBits - 1)
			if filter&(1<<bit) != 0 {
				v.problem(path, pnid, off, "xattr", "the name filter hides xattr %q from the kernel", name)
			}
		}
		if strings.HasPrefix(name, xACL) {
			v.hasACL = true
		}
		if !v.cfs || !strings.HasPrefix(name, xOverlay) || strings.HasPrefix(name, xEscaped) {
			continue
		}
		switch name {
		case xRedirect:
			redirect, hasRedirect = x.Value, true
		case xMetacopy:
			metacopy, hasMetacopy = x.Value, true
		case xOpaque:
			if in.Type() != erofs.ModeDir {
				v.problem(path, pnid, off, "xattr", "%s on a non-directory", name)
			}
		default:
			v.problem(path, pnid, off, "xattr", "overlayfs xattr %q that composefs never writes (user xattrs are stored escaped as trusted.overlay.overlay.*)", name)
		}
	}
	if hasRedirect || hasMetacopy {
		v.checkOverlayFile(path, in, isReg, hasRedirect, redirect, hasMetacopy, metacopy)
	}
}

// checkOverlayFile checks a file's redirect and metacopy xattrs.
func (v *verifier) checkOverlayFile(path string, in *erofs.Inode, isReg, hasRedirect bool, redirect []byte, hasMetacopy bool, metacopy []byte) {
	pnid := ptr(in.Nid)
	if !isReg {
		v.problem(path, pnid, nil, "xattr", "overlayfs redirect or metacopy xattr on a non-regular file")
		return
	}
	var digest []byte
	if hasMetacopy {
		switch {
		case len(metacopy) == 0:
		case len(metacopy) != 4+32 && len(metacopy) != 4+64:
			v.problem(path, pnid, nil, "metacopy", "metacopy value of %d bytes (want 0, 36 or 68)", len(metacopy))
		case len(metacopy) == 4+32 && (metacopy[0] != 0 || metacopy[1] != 36 || metacopy[2] != 0 || metacopy[3] != byte(fsverity.SHA256)):
			v.problem(path, pnid, nil, "metacopy", "metacopy header % x (want version 0, length 36, flags 0, sha256)", metacopy[:4])
		case len(metacopy) == 4+64 && (metacopy[0] != 0 || metacopy[1] != 68 || metacopy[2] != 0 || metacopy[3] != byte(fsverity.SHA512)):
			v.problem(path, pnid, nil, "metacopy", "metacopy header % x (want version 0, length 68, flags 0, sha512)", metacopy[:4])
		default:
			digest = metacopy[4:]
		}
		if in.Layout == erofs.LayoutFlatInline || (in.Layout == erofs.LayoutFlatPlain && in.Size > 0) {
			v.problem(path, pnid, nil, "metacopy", "metacopy file that also has data in the image")
		}
	}
	if !hasRedirect {
		return
	}
	if !hasMetacopy {
		v.problem(path, pnid, nil, "redirect", "redirect without metacopy: overlayfs ignores it")
	}
	obj, ok := objectPath(redirect)
	if !ok {
		v.problem(path, pnid, nil, "redirect", "redirect %s is not an object path /XX/<62 or 126 hex digits>", esc(string(redirect)))
		return
	}
	if digest != nil && strings.ReplaceAll(obj, "/", "") != fsverity.Hex(digest) {
		v.problem(path, pnid, nil, "redirect", "redirect %s does not match the metacopy digest %s", obj, fsverity.Hex(digest))
	}
	if o := v.objects[obj]; o != nil {
		if o.size != in.Size {
			v.problem(path, pnid, nil, "object", "object %s used with size %d here and %d by %s", obj, in.Size, o.size, o.path)
		}
		if digest != nil && o.digest != nil && !bytes.Equal(digest, o.digest) {
			v.problem(path, pnid, nil, "object", "object %s used with two different digests (also by %s)", obj, o.path)
		}
		if o.digest == nil {
			o.digest = digest
		}
		return
	}
	v.objects[obj] = &object{path: path, size: in.Size, digest: digest}
}

// objectPath checks that a redirect names an object of a composefs store
// ("/" + 2 hex digits + "/" + 62 or 126 hex digits, lowercase) and
// returns its path relative to the store.
func objectPath(v []byte) (string, bool) {
	s := string(v)
	if !strings.HasPrefix(s, "/") {
		return "", false
	}
	s = s[1:]
	if len(s) != 2+1+62 && len(s) != 2+1+126 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 2 {
			if c != '/' {
				return "", false
			}
			continue
		}
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return s, true
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

// checkObjects checks the referenced objects in the store.
func (v *verifier) checkObjects() error {
	v.report.Stats.Objects = len(v.objects)
	if v.opts.Basedir == "" || len(v.objects) == 0 {
		for _, o := range v.objects {
			if o.digest == nil {
				v.report.Stats.Unverified++
			}
		}
		return nil
	}
	st, err := os.Stat(v.opts.Basedir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", v.opts.Basedir)
	}
	keys := make([]string, 0, len(v.objects))
	for k := range v.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		o := v.objects[k]
		v.report.Stats.Checked++
		p := filepath.Join(v.opts.Basedir, filepath.FromSlash(k))
		fi, err := os.Lstat(p)
		if err != nil {
			v.problem(o.path, nil, nil, "object", "object %s: %v", k, errors.Unwrap(err))
			continue
		}
		if !fi.Mode().IsRegular() {
			v.problem(o.path, nil, nil, "object", "object %s is not a regular file (%v)", k, fi.Mode().Type())
			continue
		}
		if uint64(fi.Size()) != o.size {
			v.problem(o.path, nil, nil, "object", "object %s has %d bytes, the image says %d", k, fi.Size(), o.size)
			continue
		}
		if o.digest == nil {
			v.report.Stats.Unverified++
			continue
		}
		d, err := objectDigest(p, len(o.digest))
		if err != nil {
			v.problem(o.path, nil, nil, "object", "object %s: %v", k, err)
			continue
		}
		if !bytes.Equal(d, o.digest) {
			v.problem(o.path, nil, nil, "digest", "object %s has fs-verity digest %s, the image says %s", k, fsverity.Hex(d), fsverity.Hex(o.digest))
		}
	}
	return nil
}

// objectDigest returns the fs-verity digest of the file at p with the
// algorithm whose digests have size bytes (SHA-256 or SHA-512), measured by
// the kernel if the file has fs-verity with it, computed otherwise.
func objectDigest(p string, size int) ([]byte, error) {
	want := fsverity.SHA256
	if size == fsverity.SHA512.Size() {
		want = fsverity.SHA512
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	alg, d, err := fsverity.Measure(f)
	if err == nil && alg == want {
		return d, nil
	}
	return fsverity.Digest(f, want)
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
		v.problem("", nil, nil, "digest", "image fs-verity digest is %s, expected %s", fsverity.Hex(d), fsverity.Hex(v.opts.Digest))
	}
	return nil
}
