// Package image turns a [tree.Node] into a composefs image (an EROFS
// filesystem holding only metadata, with overlayfs redirect and metacopy
// xattrs pointing regular files at an object store) and reads images back.
//
// # Writing
//
// [Write] produces exactly the bytes upstream mkcomposefs (libcomposefs)
// produces for the same tree and format version, so that image digests agree
// across implementations. Every layout decision below (inode order, compact
// versus extended inodes, xattr sharing, where directory and file tails are
// inlined, padding) follows upstream's writer; comments say which.
//
// Format version 0 is the original format; version 1 marks directories that
// contain escaped whiteouts as opaque for newer overlayfs. With MaxVersion
// above MinVersion, the version is raised to 1 only when the tree contains a
// whiteout, as upstream does.
//
// The overlay xattr names, their escaping and the redirect and metacopy
// encodings the writer and the reader use are package schema's.
package image

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// MaxVersion is the newest image format version gocfs writes.
const MaxVersion = schema.MaxVersion

// Options select the format version. The zero value writes version 0.
type Options struct {
	// MinVersion is the format version to write.
	MinVersion int
	// MaxVersion allows raising the version when the tree needs it (a
	// whiteout needs version 1). Values below MinVersion mean MinVersion.
	MaxVersion int
}

// DefaultOptions are upstream mkcomposefs's defaults: version 0, raised to 1
// when the tree has whiteouts.
var DefaultOptions = Options{MinVersion: 0, MaxVersion: 1}

// Errors returned by Write, wrapped with the path concerned.
var (
	ErrVersion = errors.New("image: unsupported format version")
	ErrTree    = errors.New("image: invalid tree")
)

// Xattr names the writer treats specially besides the overlay ones (in
// package schema).
const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
	xattrSelinux    = "security.selinux"
)

// maxChunks bounds a non-inline file's chunk index so that it fits one
// block, as upstream does; it caps file size at 8 PiB.
const maxChunks = 1024

// xattr is one attribute of an inode being written, with its sharing state.
type xattr struct {
	name   string
	value  []byte
	shared int64 // offset in the shared area, or -1
}

// inode is the writer's view of one inode. It never modifies the input
// tree: overlay xattrs, whiteout conversion and "."/".." entries exist only
// here.
type inode struct {
	src     *tree.Node // owner, rdev, mtime, payload and content come from here
	parent  *inode
	mode    uint32 // may differ from src's: whiteouts become regular files
	nlink   uint32
	size    uint64
	xattrs  []xattr
	space   int // upstream's xattr space accounting
	dirents []dirent
	ino     uint32
	meta    [36]byte // a SHA-256 metacopy value, kept here to save an allocation

	compact  bool
	ipad     uint64
	xsize    uint64
	isize    uint64
	nid      uint64
	nblocks  uint64
	tailsize uint64
}

type dirent struct {
	name   string
	target *inode
	isDir  bool // the entry's own mode is a directory (for nlink)
}

func (ino *inode) typ() uint32 { return ino.mode & tree.ModeType }

// setXattr adds or replaces an xattr under upstream's accounting and
// external-input limit, keeping upstream's order (a removed entry's place is
// taken by the last one).
func (ino *inode) setXattr(name string, value []byte) error {
	for i, x := range ino.xattrs {
		if x.name == name {
			last := len(ino.xattrs) - 1
			ino.xattrs[i] = ino.xattrs[last]
			ino.xattrs = ino.xattrs[:last]
			if last > 0 {
				ino.space -= 2*erofs.XattrEntrySize - 1 + len(name) + len(x.value)
			} else {
				ino.space = 0
			}
			break
		}
	}
	size := 2*erofs.XattrEntrySize - 1 + len(name) + len(value)
	if len(ino.xattrs) == 0 {
		size += erofs.XattrHeaderSize
	}
	if ino.space+size > tree.ExternalXattrSpace {
		return fmt.Errorf("%w: xattrs of %s take more than %d bytes", ErrTree, ino.path(), tree.ExternalXattrSpace)
	}
	ino.xattrs = append(ino.xattrs, xattr{name: name, value: value, shared: -1})
	ino.space += size
	return nil
}

func (ino *inode) path() string {
	if ino.src.Parent == nil && ino.parent != nil {
		return "(root whiteout)"
	}
	return ino.src.Path()
}

// builder lays out and writes one image.
type builder struct {
	version   int
	nodes     []*inode              // breadth-first order; index = inode number
	byNode    map[*tree.Node]*inode // made when a hard link is resolved
	arena     arena
	nInodes   int // inodes converted, for order
	nXattrs   int // xattrs of all inodes, for shareXattrs
	minSec    int64
	minNsec   uint32
	hasACL    bool
	shared    []*xattr // shared xattrs in their on-disk order
	sharedLen uint64
	inodesEnd uint64
	dataStart uint64
	nData     uint64
	curEnd    uint64
}

// Write writes the composefs image of root to w.
func Write(w io.Writer, root *tree.Node, opts Options) error {
	b, err := layout(root, opts)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	e := &emitter{w: bw}
	b.emit(e)
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

// Version returns the format version Write would use for root.
func Version(root *tree.Node, opts Options) (int, error) {
	return chooseVersion(root, opts)
}

func chooseVersion(root *tree.Node, opts Options) (int, error) {
	v, max := opts.MinVersion, opts.MaxVersion
	if v < 0 || v > MaxVersion || max > MaxVersion {
		return 0, fmt.Errorf("%w: min %d, max %d (supported: 0 to %d)", ErrVersion, opts.MinVersion, opts.MaxVersion, MaxVersion)
	}
	if max < v {
		max = v
	}
	// Version 1 changed how whiteouts are stored: use it when allowed and
	// the tree has one.
	if v < schema.WhiteoutOpaqueVersion && max >= schema.WhiteoutOpaqueVersion && hasWhiteout(root) {
		v = schema.WhiteoutOpaqueVersion
	}
	return v, nil
}

func hasWhiteout(n *tree.Node) bool {
	if n.IsWhiteout() {
		return true
	}
	for _, c := range n.Children {
		if c.LinkTo == nil && hasWhiteout(c) {
			return true
		}
	}
	return false
}

func layout(root *tree.Node, opts Options) (*builder, error) {
	if root == nil || !root.IsDir() || root.LinkTo != nil {
		return nil, fmt.Errorf("%w: the root must be a directory", ErrTree)
	}
	v, err := chooseVersion(root, opts)
	if err != nil {
		return nil, err
	}
	b := &builder{version: v}
	rootIno, err := b.convertParallel(root, nil, 0, make(chan struct{}, runtime.GOMAXPROCS(0)-1))
	if err != nil {
		return nil, err
	}
	if err := b.finishRoot(rootIno); err != nil {
		return nil, err
	}
	if err := b.order(rootIno); err != nil {
		return nil, err
	}
	b.shareXattrs()
	b.placeInodes()
	return b, nil
}

// convert makes the writer's inodes for n and the tree below it, adding the
// overlay xattrs upstream adds (rewrite_tree_node_for_erofs).
func (b *builder) convert(n *tree.Node, parent *inode) (*inode, error) {
	ino, err := b.convertNode(n, parent)
	if err != nil || n.Type() != tree.ModeDir {
		return ino, err
	}
	for _, c := range n.Children {
		var ci *inode
		if c.LinkTo == nil {
			if ci, err = b.convert(c, ino); err != nil {
				return nil, err
			}
		}
		ino.dirents = append(ino.dirents, dirent{name: c.Name, target: ci, isDir: c.IsDir()})
	}
	return ino, nil
}

// convertNode makes the inode of n alone (a directory's entries are left
// to the caller).
func (b *builder) convertNode(n *tree.Node, parent *inode) (*inode, error) {
	if err := checkNode(n); err != nil {
		return nil, err
	}
	ino := b.arena.inode()
	*ino = inode{src: n, parent: parent, mode: n.Mode, nlink: n.Nlink, size: n.Size, space: n.XattrSpace()}
	ino.escapeXattrs(&b.arena)
	if ino.inStore() {
		if err := ino.addObjectXattrs(&b.arena); err != nil {
			return nil, err
		}
	}
	if n.IsWhiteout() {
		if err := b.convertWhiteout(ino); err != nil {
			return nil, err
		}
	}
	if n.Type() == tree.ModeDir {
		ino.dirents = make([]dirent, 0, len(n.Children)+2)
	}
	b.nInodes++                  // counted here; order numbers them
	b.nXattrs += len(ino.xattrs) // whiteouts add to their parent's, counted already: a bound
	return ino, nil
}

// parallelDepth is the depth down to which directories' subtrees are
// converted by goroutines of their own.
const parallelDepth = 4

// convertParallel is convert, with the subtrees of the directories near
// the top converted by up to cap(sem)+1 goroutines, each with a builder of
// its own whose counts are added. A whiteout changes only its own
// directory's inode, which the same goroutine converted. The error
// returned is the one convert would return: the first in tree order.
func (b *builder) convertParallel(n *tree.Node, parent *inode, depth int, sem chan struct{}) (*inode, error) {
	if depth >= parallelDepth || n.Type() != tree.ModeDir || cap(sem) == 0 {
		return b.convert(n, parent)
	}
	ino, err := b.convertNode(n, parent)
	if err != nil {
		return nil, err
	}
	type result struct {
		ino *inode
		sub *builder
		err error
	}
	res := make([]result, len(n.Children))
	var wg sync.WaitGroup
	for i, c := range n.Children {
		if c.LinkTo != nil {
			continue
		}
		if c.IsDir() {
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					sub := &builder{version: b.version}
					ci, err := sub.convertParallel(c, ino, depth+1, sem)
					res[i] = result{ci, sub, err}
				}()
				continue
			default:
			}
		}
		ci, err := b.convertParallel(c, ino, depth+1, sem)
		res[i] = result{ino: ci, err: err}
	}
	wg.Wait()
	for i, c := range n.Children {
		r := res[i]
		if r.err != nil {
			return nil, r.err
		}
		if r.sub != nil {
			b.nInodes += r.sub.nInodes
			b.nXattrs += r.sub.nXattrs
		}
		ino.dirents = append(ino.dirents, dirent{name: c.Name, target: r.ino, isDir: c.IsDir()})
	}
	return ino, nil
}

// checkNode refuses what no image can hold.
func checkNode(n *tree.Node) error {
	if !tree.ValidMode(n.Mode) {
		return fmt.Errorf("%w: %s: invalid file type in mode %o", ErrTree, n.Path(), n.Mode)
	}
	typ := n.Type()
	switch {
	case typ != tree.ModeDir && len(n.Children) > 0:
		return fmt.Errorf("%w: %s: only directories can have children", ErrTree, n.Path())
	case typ == tree.ModeSymlink && n.Payload == "":
		return fmt.Errorf("%w: %s: symlink without a target", ErrTree, n.Path())
	case typ != tree.ModeRegular:
		return nil
	case n.Content != nil && uint64(len(n.Content)) != n.Size:
		return fmt.Errorf("%w: %s: inline content is %d bytes but size is %d", ErrTree, n.Path(), len(n.Content), n.Size)
	}
	if n.Size > 0 && n.Content == nil {
		if _, count := chunking(n.Size); count > maxChunks {
			return fmt.Errorf("%w: %s: %d bytes is more than a composefs image can describe", ErrTree, n.Path(), n.Size)
		}
	}
	return nil
}

// inStore reports whether the inode is a regular file whose content is in
// the object store: not empty, and not inline.
func (ino *inode) inStore() bool {
	return ino.typ() == tree.ModeRegular && ino.size > 0 && ino.src.Content == nil
}

// escapeXattrs copies the file's own xattrs, escaping its overlay xattrs
// so that overlayfs doesn't act on them. Room is left for the metacopy
// and redirect of a file in the store.
func (ino *inode) escapeXattrs(a *arena) {
	n := ino.src
	extra := 0
	if ino.inStore() {
		extra = 2
	}
	ino.xattrs = a.xattrs(len(n.Xattrs), len(n.Xattrs)+extra)
	for i, x := range n.Xattrs {
		ino.xattrs[i] = xattr{name: schema.Escape(x.Name), value: x.Value, shared: -1}
	}
}

// addObjectXattrs adds the metacopy xattr (with the digest, if any) and
// the redirect (if the file has a payload) of a file in the store.
func (ino *inode) addObjectXattrs(a *arena) error {
	n := ino.src
	meta := ino.meta[:0]
	if len(n.Digest) > 0 {
		d, err := digest.FromBytes(n.Digest)
		if err != nil {
			return fmt.Errorf("%w: %s: digest is %d bytes, want a sha256 (32) or sha512 (64) fs-verity digest", ErrTree, n.Path(), len(n.Digest))
		}
		meta = schema.AppendMetacopy(meta, d)
	}
	if err := ino.setXattr(schema.Metacopy, meta); err != nil {
		return err
	}
	if n.Payload == "" {
		return nil
	}
	redirect := schema.AppendRedirect(a.bytes(1+len(n.Payload)), n.Payload)
	return ino.setXattr(schema.Redirect, redirect)
}

// convertWhiteout turns a whiteout of the tree into a regular file with
// escaped whiteout xattrs, and marks its directory as holding whiteouts
// (and, from version 1, opaque to newer overlayfs).
func (b *builder) convertWhiteout(ino *inode) error {
	ino.size = 0
	ino.mode = tree.ModeRegular | ino.mode&^tree.ModeType
	for _, name := range []string{schema.EscapedWhiteout, schema.UserWhiteout} {
		if err := ino.setXattr(name, []byte{}); err != nil {
			return err
		}
	}
	parent := ino.parent
	if parent == nil {
		return nil
	}
	for _, name := range []string{schema.EscapedWhiteouts, schema.UserWhiteouts} {
		if err := parent.setXattr(name, []byte{}); err != nil {
			return err
		}
	}
	if b.version < schema.WhiteoutOpaqueVersion {
		return nil
	}
	for _, name := range []string{schema.EscapedOpaque, schema.UserOpaque} {
		if err := parent.setXattr(name, []byte(schema.OpaqueWhiteoutDir)); err != nil {
			return err
		}
	}
	return nil
}

// finishRoot marks the root opaque and adds a whiteout for each of the 256
// object-store directories (00…ff) the root doesn't already have, so that
// the store's directories never show through the image.
func (b *builder) finishRoot(root *inode) error {
	if err := root.setXattr(schema.Opaque, []byte(schema.OpaqueRoot)); err != nil {
		return err
	}
	selinux, hasSelinux := root.src.GetXattr(xattrSelinux)
	var extra []dirent
	for i := 0; i < schema.RootWhiteouts; i++ {
		name := schema.RootWhiteoutName(i)
		if root.src.Lookup(name) != nil {
			continue
		}
		src := &tree.Node{
			Mode: tree.ModeChar | 0o644, Nlink: 1, UID: root.src.UID, GID: root.src.GID,
			MtimeSec: root.src.MtimeSec, MtimeNsec: root.src.MtimeNsec,
		}
		w := &inode{src: src, parent: root, mode: src.Mode, nlink: 1}
		if hasSelinux {
			if err := w.setXattr(xattrSelinux, selinux); err != nil {
				return err
			}
		}
		extra = append(extra, dirent{name: name, target: w})
	}
	root.dirents = append(root.dirents, extra...)
	slices.SortStableFunc(root.dirents, compareDirents)
	return nil
}

// order numbers the inodes breadth first, resolves hard links, adds "." and
// "..", and computes link counts, the oldest mtime and the ACL flag
// (upstream's lcfs_compute_tree).
func (b *builder) order(root *inode) error {
	b.nodes = append(make([]*inode, 0, b.nInodes+schema.RootWhiteouts), root)
	b.minSec, b.minNsec = root.src.MtimeSec, root.src.MtimeNsec
	for i := 0; i < len(b.nodes); i++ {
		ino := b.nodes[i]
		ino.ino = uint32(i)
		if ino.typ() == tree.ModeDir {
			nlink := uint32(2)
			for _, d := range ino.dirents {
				if d.isDir {
					nlink++
				}
			}
			ino.nlink = nlink
		}
		slices.SortFunc(ino.xattrs, func(x, y xattr) int { return strings.Compare(x.name, y.name) })
		if ino.src.MtimeSec < b.minSec || ino.src.MtimeSec == b.minSec && ino.src.MtimeNsec < b.minNsec {
			b.minSec, b.minNsec = ino.src.MtimeSec, ino.src.MtimeNsec
		}
		for _, x := range ino.xattrs {
			if x.name == xattrACLAccess || x.name == xattrACLDefault {
				b.hasACL = true
			}
		}
		for _, d := range ino.dirents {
			if d.target != nil {
				b.nodes = append(b.nodes, d.target)
			}
		}
	}
	for _, ino := range b.nodes {
		if ino.typ() != tree.ModeDir {
			continue
		}
		for k := range ino.dirents {
			d := &ino.dirents[k]
			if d.target != nil {
				continue
			}
			link := ino.src.Lookup(d.name)
			t, err := link.Target()
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrTree, link.Path(), err)
			}
			ti := b.inodeOf(t)
			if ti == nil {
				return fmt.Errorf("%w: %s: hard link to %s, which is not in the tree", ErrTree, link.Path(), t.Path())
			}
			if ti.typ() == tree.ModeDir {
				return fmt.Errorf("%w: %s: hard link to directory %s", ErrTree, link.Path(), t.Path())
			}
			d.target = ti
		}
		parent := ino.parent
		if parent == nil {
			parent = ino
		}
		ino.dirents = append(ino.dirents, dirent{name: ".", target: ino}, dirent{name: "..", target: parent})
		slices.SortStableFunc(ino.dirents, compareDirents)
	}
	return nil
}

func compareDirents(x, y dirent) int { return strings.Compare(x.name, y.name) }

// inodeOf returns the inode made of n, or nil. The map it looks in is
// made on first use: only trees with hard links need it.
func (b *builder) inodeOf(n *tree.Node) *inode {
	if b.byNode == nil {
		b.byNode = make(map[*tree.Node]*inode, len(b.nodes))
		for _, ino := range b.nodes {
			b.byNode[ino.src] = ino
		}
	}
	return b.byNode[n]
}

// xattrIndex splits an xattr name into an EROFS name index and suffix.
func xattrIndex(name string) (uint8, string) {
	for _, p := range [...]struct {
		prefix string
		index  uint8
	}{
		{"user.", erofs.XattrIndexUser},
		{xattrACLAccess, erofs.XattrIndexPosixACLAccess},
		{xattrACLDefault, erofs.XattrIndexPosixACLDefault},
		{"trusted.", erofs.XattrIndexTrusted},
		{"security.", erofs.XattrIndexSecurity},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.index, name[len(p.prefix):]
		}
	}
	return 0, name
}

func xattrEntrySize(x *xattr) uint64 {
	_, suffix := xattrIndex(x.name)
	return roundUp(uint64(erofs.XattrEntrySize+len(suffix)+len(x.value)), 4)
}

// shareXattrs stores each name/value pair used by more than one inode once,
// in the shared xattr area (upstream's compute_erofs_shared_xattrs).
//
// Most pairs are unique (every redirect and metacopy names one object), so
// pairs are not kept in a map: a compact record per use is sorted by a hash
// of the pair, and only uses whose hash recurs are compared byte for byte.
func (b *builder) shareXattrs() {
	type use struct {
		hash uint64
		ino  uint32 // index in b.nodes
		idx  uint32 // index in the inode's xattrs
	}
	seed := maphash.MakeSeed()
	uses := make([]use, 0, b.nXattrs+2*len(b.nodes))
	for i, ino := range b.nodes {
		for k := range ino.xattrs {
			x := &ino.xattrs[k]
			x.shared = -1
			h := maphash.String(seed, x.name) ^ maphash.Bytes(seed, x.value)*0x9E3779B97F4A7C15
			uses = append(uses, use{h, uint32(i), uint32(k)})
		}
	}
	slices.SortFunc(uses, func(a, c use) int { return cmp.Compare(a.hash, c.hash) })
	at := func(u use) *xattr { return &b.nodes[u.ino].xattrs[u.idx] }

	// Within each run of equal hashes, split the uses into groups of equal
	// pairs; a group of two or more is shared.
	var groups [][]use
	for i := 0; i < len(uses); {
		j := i + 1
		for j < len(uses) && uses[j].hash == uses[i].hash {
			j++
		}
		run := uses[i:j]
		for len(run) > 1 {
			first := at(run[0])
			same, rest := run[:0:0], run[:0]
			for _, u := range run {
				if x := at(u); x.name == first.name && bytes.Equal(x.value, first.value) {
					same = append(same, u)
				} else {
					rest = append(rest, u)
				}
			}
			if len(same) > 1 {
				groups = append(groups, same)
			}
			run = rest
		}
		i = j
	}
	uses = nil
	// Upstream's canonical order: by name, then value length, then value,
	// all descending.
	slices.SortFunc(groups, func(g, h []use) int {
		a, c := at(g[0]), at(h[0])
		if a.name != c.name {
			return -strings.Compare(a.name, c.name)
		}
		if len(a.value) != len(c.value) {
			return -cmp.Compare(len(a.value), len(c.value))
		}
		return -bytes.Compare(a.value, c.value)
	})
	var off uint64
	for _, g := range groups {
		x := at(g[0])
		b.shared = append(b.shared, x)
		for _, u := range g {
			at(u).shared = int64(off)
		}
		off += xattrEntrySize(x)
	}
	b.sharedLen = off
	// At most 128 shared references fit an inode's header count; the rest
	// of a very xattr-rich inode's shared pairs are stored inline.
	for _, ino := range b.nodes {
		n := 0
		for k := range ino.xattrs {
			if x := &ino.xattrs[k]; x.shared >= 0 {
				if n < erofs.XattrLongPrefix {
					n++
				} else {
					x.shared = -1
				}
			}
		}
	}
}

func roundUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// chunking returns the chunk size bits and chunk count describing a
// non-inline file of the given size with the fewest chunks.
func chunking(size uint64) (chunkBits uint32, count uint64) {
	chunkBits = uint32(bits.Len64(size - 1)) // ilog2(size-1)+1
	if chunkBits < erofs.BlockSizeBits {
		chunkBits = erofs.BlockSizeBits
	}
	if chunkBits-erofs.BlockSizeBits > erofs.ChunkFormatBlkbitsMask {
		chunkBits = erofs.ChunkFormatBlkbitsMask + erofs.BlockSizeBits
	}
	chunk := uint64(1) << chunkBits
	return chunkBits, (size-1)/chunk + 1
}

func direntLen(d *dirent) uint64 { return erofs.DirentSize + uint64(len(d.name)) }

// dirSize splits a directory into full blocks and an inline tail; a tail of
// more than half a block gets a block of its own.
func dirSize(ino *inode) (nblocks, tail uint64) {
	var used uint64
	for k := range ino.dirents {
		l := direntLen(&ino.dirents[k])
		if used+l > erofs.BlockSize {
			nblocks++
			used = 0
		}
		used += l
	}
	if used > erofs.BlockSize/2 {
		nblocks++
		used = 0
	}
	return nblocks, used
}

func (ino *inode) xattrCounts() (nShared int, inlineSize uint64) {
	for i := range ino.xattrs {
		if ino.xattrs[i].shared >= 0 {
			nShared++
		} else {
			inlineSize += xattrEntrySize(&ino.xattrs[i])
		}
	}
	return
}

func xattrBodySize(nShared int, inlineSize uint64) uint64 {
	if nShared == 0 && inlineSize == 0 {
		return 0
	}
	return roundUp(erofs.XattrHeaderSize+4*uint64(nShared)+inlineSize, 4)
}

// placeInodes assigns every inode its nid and data blocks
// (upstream's compute_erofs_inodes).
func (b *builder) placeInodes() {
	pos := uint64(erofs.SuperOffset + erofs.SuperBlockSize)
	metaStart := pos &^ (erofs.BlockSize - 1)
	for _, ino := range b.nodes {
		typ := ino.typ()
		switch {
		case typ == tree.ModeDir:
			ino.nblocks, ino.tailsize = dirSize(ino)
		case typ == tree.ModeSymlink:
			ino.nblocks, ino.tailsize = 0, uint64(len(ino.src.Payload))
		case typ == tree.ModeRegular && ino.size > 0:
			if ino.src.Content != nil {
				ino.nblocks = ino.size / erofs.BlockSize
				ino.tailsize = ino.size % erofs.BlockSize
				if ino.tailsize > erofs.BlockSize/2 {
					ino.nblocks++
					ino.tailsize = 0
				}
			} else {
				_, count := chunking(ino.size)
				ino.nblocks, ino.tailsize = 0, count*4
			}
		default:
			ino.nblocks, ino.tailsize = 0, 0
		}
		ino.compact = b.fitsCompact(ino)
		isz := uint64(erofs.InodeExtendedSize)
		if ino.compact {
			isz = erofs.InodeCompactSize
		}
		ino.xsize = xattrBodySize(ino.xattrCounts())

		aligned := roundUp(pos, erofs.SlotSize)
		ino.ipad = aligned - pos
		pos = aligned
		extra := ino.tailPadding(pos, isz, ino.xsize)
		ino.ipad += extra
		pos += extra
		ino.isize = isz + ino.xsize + ino.tailsize
		b.nData += ino.nblocks
		ino.nid = (pos - metaStart) / erofs.SlotSize
		pos += ino.isize
	}
	b.inodesEnd = roundUp(pos, erofs.SlotSize)
	b.dataStart = roundUp(b.inodesEnd+b.sharedLen, erofs.BlockSize)
}

// fitsCompact reports whether ino can use a 32-byte inode: its mtime must be
// the image's build time and its fields must fit the narrower types.
func (b *builder) fitsCompact(ino *inode) bool {
	if ino.src.MtimeSec != b.minSec || ino.src.MtimeNsec != b.minNsec {
		return false
	}
	if ino.nlink > 0xffff || ino.src.UID > 0xffff || ino.src.GID > 0xffff {
		return false
	}
	size := ino.size
	if ino.typ() == tree.ModeDir {
		size = ino.nblocks*erofs.BlockSize + ino.tailsize
	}
	return size <= 0xffffffff
}

// tailPadding returns the padding to put before the inode so that its
// inline tail doesn't cross a block boundary, moving the tail to a block of
// its own when it can't fit (upstream's
// compute_erofs_inode_padding_for_tail, quirks included).
func (ino *inode) tailPadding(pos, isz, xsize uint64) uint64 {
	nonTail := isz + xsize
	total := nonTail + ino.tailsize
	if ino.typ() == tree.ModeSymlink {
		// A symlink's inode and target stay in one block; a target that
		// can't fit with the inode goes to a block of its own.
		startBlock := pos / erofs.BlockSize
		endBlock := (pos + total - 1) / erofs.BlockSize
		if total/erofs.BlockSize > 0 {
			ino.nblocks++
			ino.tailsize = 0
		}
		if startBlock != endBlock {
			return roundUp(pos, erofs.BlockSize) - pos
		}
		return 0
	}
	remain := erofs.BlockSize - (pos+nonTail)%erofs.BlockSize
	if remain < ino.tailsize {
		pad := roundUp(remain, erofs.SlotSize)
		remain = erofs.BlockSize - (pos+nonTail+pad)%erofs.BlockSize
		if ino.tailsize <= remain {
			return pad
		}
		ino.nblocks++
		ino.tailsize = 0
		return roundUp(pos, erofs.BlockSize) - pos
	}
	return 0
}
