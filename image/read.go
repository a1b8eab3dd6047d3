package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// Errors returned by Read and ReadVersion, besides the erofs package's
// (erofs.ErrCorrupt, erofs.ErrLimit, ...) and the tree package's. All of
// them wrap fs.ErrInvalid.
var (
	// ErrNotComposefs reports a file that does not start with a composefs
	// header, or is too short to be an image.
	ErrNotComposefs = fmt.Errorf("image: not a composefs image: %w", fs.ErrInvalid)
	// ErrHeaderVersion reports a composefs header of an unknown version.
	ErrHeaderVersion = fmt.Errorf("image: unsupported composefs header version: %w", fs.ErrInvalid)
	// ErrWhiteoutLink reports a whiteout (character device 0/0) with more
	// than one link, which upstream refuses.
	ErrWhiteoutLink = fmt.Errorf("image: hard-linked whiteout: %w", erofs.ErrCorrupt)
	// ErrDirLink reports a directory reached through more than one
	// directory entry: a directory hard link or a cycle.
	ErrDirLink = fmt.Errorf("image: directory reached twice (hard link or cycle): %w", erofs.ErrCorrupt)
	// ErrFileLayout reports a regular file whose data layout composefs
	// never writes (a non-empty file that is neither flat nor chunk-based),
	// or flat content larger than tree.MaxInlineContent.
	ErrFileLayout = fmt.Errorf("image: unexpected regular file layout: %w", fs.ErrInvalid)
)

// ReadOptions controls Read.
type ReadOptions struct {
	// Filter, when not nil, keeps only the top-level entries with these
	// names, like composefs-info's --filter (a non-nil empty Filter keeps
	// none). Entries filtered out are not read at all.
	Filter []string
}

// Limits on what an image may make Read do (see erofs/README.md): bytes
// of directories, inline content and symlink targets read, and bytes of
// xattrs decoded and copied into the tree.
const (
	readDataFactor  = 2
	readDataSlack   = 1 << 20
	readXattrFactor = 64
	readXattrSlack  = 16 << 20
)

// ReadVersion returns the composefs format version (composefs_version)
// recorded in the header of the image in r.
func ReadVersion(r io.ReaderAt) (int, error) {
	h, err := readHeader(r)
	if err != nil {
		return 0, err
	}
	return int(h.ComposefsVersion), nil
}

func readHeader(r io.ReaderAt) (*erofs.ComposefsHeader, error) {
	var b [erofs.ComposefsHeaderSize]byte
	if n, err := r.ReadAt(b[:], 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %d-byte file", ErrNotComposefs, n)
		}
		return nil, err
	}
	var h erofs.ComposefsHeader
	if _, err := binary.Decode(b[:], binary.LittleEndian, &h); err != nil {
		return nil, err
	}
	if h.Magic != erofs.ComposefsMagic {
		return nil, fmt.Errorf("%w: bad magic %#08x", ErrNotComposefs, h.Magic)
	}
	if h.Version != erofs.ComposefsHeaderVersion {
		return nil, fmt.Errorf("%w: %d", ErrHeaderVersion, h.Version)
	}
	return &h, nil
}

// ReadFile reads the composefs image at path into a tree.
func ReadFile(path string, opts ReadOptions) (*tree.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	root, err := Read(f, st.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return root, nil
}

// Read reads the composefs image in r, size bytes long, back into a tree,
// with the semantics of upstream's lcfs_load_node_from_image:
//
//   - Stat fields come from the inodes; compact inodes get the
//     superblock's build time as mtime.
//   - trusted.overlay.redirect on a regular file becomes its Payload
//     (schema.RedirectPayload), and trusted.overlay.metacopy its Digest
//     (schema.ParseMetacopy: SHA-256 or SHA-512). A regular file marked
//     trusted.overlay.overlay.whiteout becomes a whiteout (character
//     device 0/0).
//   - trusted.overlay.overlay.X is unescaped to trusted.overlay.X; other
//     trusted.overlay.* xattrs, trusted.overlay.overlay.whiteouts and
//     user.overlay.whiteout(s) are dropped. The rest are kept in on-disk
//     order (inline ones, then shared ones).
//   - Whiteouts stored as such (the 256 that composefs adds to the root)
//     are skipped; one with more than one link is an error.
//   - An inode reached again through another directory entry becomes a
//     hard link (LinkTo) to the node first read for it, depth-first in
//     directory order.
//   - The content of flat regular files (at most tree.MaxInlineContent
//     bytes) is read into Content.
//
// Names and xattr names are C strings upstream: they end at their first
// NUL byte here too. Two upstream bugs are not reproduced: upstream takes
// two bytes past a redirect's value into the payload when no NUL follows
// it, and ignores an inline xattr entry of exactly 4 bytes (empty name
// suffix and value) at the end of the xattr area. Read keeps the value and
// the entry as the kernel reads them. Where upstream is looser than the
// kernel, Read follows the kernel: a metacopy value overlayfs would refuse
// (upstream takes the digest of any 36-byte value) is an error wrapping
// erofs.ErrCorrupt, and the redirect "/", which overlayfs refuses and
// upstream reads as the payload "/", reads as no payload, like "/\x00".
//
// Read refuses images that are not composefs images, and bounds its work
// and allocations by the image size (erofs.ErrLimit).
func Read(r io.ReaderAt, size int64, opts ReadOptions) (*tree.Node, error) {
	if size < erofs.BlockSize {
		return nil, fmt.Errorf("%w: %d-byte file", ErrNotComposefs, size)
	}
	if _, err := readHeader(r); err != nil {
		return nil, err
	}
	img, err := erofs.Open(r, size)
	if err != nil {
		return nil, err
	}
	s := &readState{
		img:         img,
		seen:        make(map[uint64]*tree.Node),
		shared:      make(map[uint32]erofs.Xattr),
		dataBudget:  readDataFactor*size + readDataSlack,
		xattrBudget: readXattrFactor*size + readXattrSlack,
	}
	if opts.Filter != nil {
		s.filter = make(map[string]bool, len(opts.Filter))
		for _, f := range opts.Filter {
			s.filter[f] = true
		}
	}
	return s.read()
}

// readState is one Read in progress.
type readState struct {
	img    *erofs.Image
	filter map[string]bool
	seen   map[uint64]*tree.Node  // nid -> first node read for it
	shared map[uint32]erofs.Xattr // decoded shared xattrs

	dataBudget  int64
	xattrBudget int64
}

func (s *readState) spend(budget *int64, n int64, what string) error {
	*budget -= n
	if *budget < 0 {
		return fmt.Errorf("%w: too many bytes of %s for a %d-byte image", erofs.ErrLimit, what, s.img.Size())
	}
	return nil
}

// read builds the tree depth first, children in directory order
// (erofs's Walk, which enters each directory once and never recurses).
func (s *readState) read() (*tree.Node, error) {
	var root *tree.Node
	err := s.img.Walk(func(e *erofs.WalkEntry) ([]erofs.DirEntry, error) {
		if e.Depth == 0 {
			where := func() string { return "/" }
			n, in, skip, err := s.node(e.Nid, where)
			if err != nil {
				return nil, err
			}
			if skip {
				return nil, fmt.Errorf("%w: root is a whiteout", erofs.ErrCorrupt)
			}
			root = n
			return s.dir(in, where)
		}
		return s.entry(e)
	})
	if err != nil {
		return nil, err
	}
	return root, nil
}

// entry reads the inode entry e names into its directory's node, and
// returns the entries of a directory to walk.
func (s *readState) entry(e *erofs.WalkEntry) ([]erofs.DirEntry, error) {
	name := cString(e.Name)
	if e.Depth == 1 && s.filter != nil && !s.filter[name] {
		return nil, nil
	}
	parent := s.seen[e.Parent]
	// The path, for messages only: made when one needs it.
	where := func() string {
		p := parent.Path()
		if p != "/" {
			p += "/"
		}
		return p + name
	}
	if e.Again {
		return nil, fmt.Errorf("%w: %q (nid %d)", ErrDirLink, schema.Shorten(where()), e.Nid)
	}
	child, in, skip, err := s.node(e.Nid, where)
	if err != nil || skip {
		return nil, err
	}
	if err := parent.AddChild(name, child); err != nil {
		return nil, fmt.Errorf("image: %q: %w", schema.Shorten(where()), invalid(err))
	}
	if child.LinkTo != nil || !child.IsDir() {
		return nil, nil
	}
	return s.dir(in, where)
}

// dir reads the entries of a directory, never nil. where is its path.
func (s *readState) dir(in *erofs.Inode, where func() string) ([]erofs.DirEntry, error) {
	if err := s.spend(&s.dataBudget, int64(min(in.Size, 1<<62)), "directories"); err != nil {
		return nil, err
	}
	ents, err := in.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("image: %q: %w", schema.Shorten(where()), err)
	}
	if ents == nil {
		ents = []erofs.DirEntry{}
	}
	return ents, nil
}

// invalid makes err, a tree error about what the image holds, also wrap
// erofs.ErrCorrupt (and so fs.ErrInvalid). I/O errors are left alone.
func invalid(err error) error {
	if errors.Is(err, fs.ErrInvalid) || !isTreeError(err) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, erofs.ErrCorrupt)
}

func isTreeError(err error) bool {
	for _, e := range []error{tree.ErrEmptyName, tree.ErrNameTooLong, tree.ErrInvalidName, tree.ErrExists,
		tree.ErrXattrName, tree.ErrXattrSpace, tree.ErrXattrValue, tree.ErrContentTooLarge,
		tree.ErrPathTooLong, tree.ErrEmptySymlink, tree.ErrNotDir, tree.ErrAlreadyLinked} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// cString returns s up to its first NUL byte.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// node reads inode nid, at path where(), into a new node. skip is set for
// a whiteout stored as such. For a directory, the caller reads the
// entries.
func (s *readState) node(nid uint64, where func() string) (n *tree.Node, in *erofs.Inode, skip bool, err error) {
	in, err = s.img.Inode(nid)
	if err != nil {
		return nil, nil, false, fmt.Errorf("image: %q: %w", schema.Shorten(where()), err)
	}
	if prev := s.seen[nid]; prev != nil {
		// A directory is never reached twice (Walk's guard): this is a
		// hard link. Upstream leaves the link count as stored: no
		// MakeHardlink.
		return &tree.Node{LinkTo: prev}, in, false, nil
	}
	n = &tree.Node{
		Mode:      in.Mode,
		Nlink:     in.Nlink,
		UID:       in.UID,
		GID:       in.GID,
		Size:      in.Size,
		MtimeSec:  in.MtimeSec,
		MtimeNsec: in.MtimeNsec,
	}
	typ := in.Mode & tree.ModeType
	if typ == tree.ModeChar || typ == tree.ModeBlock {
		n.Rdev = uint64(in.Rdev)
	}
	if typ == tree.ModeChar && n.Rdev == 0 {
		if in.Nlink > 1 {
			return nil, nil, false, fmt.Errorf("%w: %q (nid %d)", ErrWhiteoutLink, schema.Shorten(where()), nid)
		}
		return nil, nil, true, nil
	}
	s.seen[nid] = n
	if err := s.data(n, in); err != nil {
		return nil, nil, false, fmt.Errorf("image: %q: %w", schema.Shorten(where()), invalid(err))
	}
	if err := s.xattrs(n, in); err != nil {
		return nil, nil, false, fmt.Errorf("image: %q: %w", schema.Shorten(where()), invalid(err))
	}
	return n, in, false, nil
}

// data reads a symlink's target or a flat regular file's content.
func (s *readState) data(n *tree.Node, in *erofs.Inode) error {
	switch n.Type() {
	case tree.ModeSymlink:
		if in.Size > tree.MaxPathLen {
			return fmt.Errorf("%w: symlink target of %d bytes", erofs.ErrCorrupt, in.Size)
		}
		if err := s.spend(&s.dataBudget, int64(in.Size), "symlink targets"); err != nil {
			return err
		}
		target, err := in.Readlink()
		if err != nil {
			return err
		}
		return n.SetSymlink(cString(target))
	case tree.ModeRegular:
		if in.Size == 0 {
			return nil
		}
		switch in.Layout {
		case erofs.LayoutFlatPlain, erofs.LayoutFlatInline:
		case erofs.LayoutChunkBased:
			// Content lives in the object store; the chunks are holes.
			return nil
		default:
			return fmt.Errorf("%w: data layout %d", ErrFileLayout, in.Layout)
		}
		if in.Size > uint64(min(tree.MaxInlineContent, s.img.Size())) {
			return fmt.Errorf("%w: %d bytes of flat content", ErrFileLayout, in.Size)
		}
		if err := s.spend(&s.dataBudget, int64(in.Size), "file content"); err != nil {
			return err
		}
		buf := make([]byte, in.Size)
		if _, err := in.ReadAt(buf, 0); err != nil && err != io.EOF {
			return err
		}
		return n.SetContent(buf)
	}
	return nil
}

// xattrs applies the inode's xattrs to n, in on-disk order.
func (s *readState) xattrs(n *tree.Node, in *erofs.Inode) error {
	_, areaSize := in.XattrArea()
	if err := s.spend(&s.xattrBudget, areaSize, "xattrs"); err != nil {
		return err
	}
	ids, err := in.SharedXattrIDs()
	if err != nil {
		return err
	}
	// Decode the inline ones from the inode, the shared ones once per id.
	xs, err := in.InlineXattrs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		x, ok := s.shared[id]
		if !ok {
			x, err = s.img.SharedXattr(id)
			if err != nil {
				return err
			}
			s.shared[id] = x
		}
		xs = append(xs, x)
	}
	for i := range xs {
		x := &xs[i]
		if err := s.spend(&s.xattrBudget, int64(len(x.Name)+len(x.Value)), "xattrs"); err != nil {
			return err
		}
		if err := applyXattr(n, cString(x.FullName()), x.Value); err != nil {
			return err
		}
	}
	return nil
}

// applyXattr is upstream's lcfs_build_node_erofs_xattr, with the redirect
// and metacopy decoded by package schema.
func applyXattr(n *tree.Node, name string, value []byte) error {
	isReg := n.Type() == tree.ModeRegular
	switch name {
	case schema.Redirect:
		if isReg {
			n.Payload, _ = schema.RedirectPayload(value)
		}
		return nil
	case schema.Metacopy:
		if isReg {
			d, err := schema.ParseMetacopy(value)
			if err != nil {
				return fmt.Errorf("%w: %w", erofs.ErrCorrupt, err)
			}
			if !d.IsZero() {
				n.Digest = d.Bytes()
			}
		}
		return nil
	case schema.EscapedWhiteout:
		if isReg {
			n.Mode = n.Mode&^tree.ModeType | tree.ModeChar
			n.Rdev = 0
			n.Size = 0
			return nil
		}
	case schema.EscapedWhiteouts, schema.UserWhiteout, schema.UserWhiteouts:
		return nil
	}
	name, shown := schema.Unescape(name)
	if !shown {
		return nil
	}
	return n.SetXattrLimit(name, value, tree.InternalXattrSpace)
}
