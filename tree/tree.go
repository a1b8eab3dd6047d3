// Package tree is the in-memory inode tree that every gocfs input becomes and
// every output is made from.
//
// A [Node] holds what a composefs image stores about one inode: its stat
// fields, extended attributes, a payload (the object-store path of a regular
// file's content, or a symlink's target), small inline content, and the
// fs-verity digest of the file's content. Directories hold their children in
// byte-wise name order. A hard link is a Node whose LinkTo points at the
// node it shares an inode with; such a node carries nothing else.
//
// The limits and quirks here (xattr space accounting, name length, the order
// in which xattrs are kept) follow upstream composefs, so that the same input
// is accepted or refused exactly as mkcomposefs does and gives the same image.
package tree

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/erofs"
)

// File type bits of Mode, as in stat(2) (the values EROFS stores; defined
// once, in package erofs).
const (
	ModeType    = erofs.ModeType
	ModeSocket  = erofs.ModeSocket
	ModeSymlink = erofs.ModeSymlink
	ModeRegular = erofs.ModeRegular
	ModeBlock   = erofs.ModeBlock
	ModeDir     = erofs.ModeDir
	ModeChar    = erofs.ModeChar
	ModeFIFO    = erofs.ModeFIFO
	ModePerm    = 0o7777
)

// Limits shared with upstream composefs.
const (
	// MaxNameLen is the longest file name, in bytes.
	MaxNameLen = 255
	// MaxXattrNameLen is the longest xattr name (XATTR_NAME_MAX).
	MaxXattrNameLen = 255
	// MaxPathLen bounds symlink targets and payloads (PATH_MAX, excluding NUL).
	MaxPathLen = 4095
	// MaxInlineContent is the largest inline content a node may carry.
	MaxInlineContent = 5000
	// RecommendedInlineMax is the largest file that is inlined when an image
	// is built from a directory; larger files go to the object store.
	RecommendedInlineMax = 64
	// ExternalXattrSpace bounds the accounted xattr space of one inode when
	// the xattrs come from outside (a dump file or a directory).
	ExternalXattrSpace = 0xffff / 2
	// InternalXattrSpace bounds it for xattrs read back from an image.
	InternalXattrSpace = 0xffff
	// MaxXattrValueLen is the largest xattr value.
	MaxXattrValueLen = 0xffff

	xattrHeaderSize = 12 // erofs_xattr_ibody_header
	xattrEntryMeta  = 4  // erofs_xattr_entry
)

// Errors returned by tree operations. Callers add the path.
var (
	ErrNotDir          = errors.New("tree: not a directory")
	ErrEmptyName       = errors.New("tree: empty file name")
	ErrNameTooLong     = errors.New("tree: file name longer than 255 bytes")
	ErrInvalidName     = errors.New("tree: invalid file name")
	ErrExists          = errors.New("tree: file exists")
	ErrAlreadyLinked   = errors.New("tree: node already has a parent")
	ErrXattrName       = errors.New("tree: invalid xattr name")
	ErrXattrSpace      = errors.New("tree: xattrs too large for one inode")
	ErrXattrValue      = errors.New("tree: xattr value too large")
	ErrHardlinkLoop    = errors.New("tree: hard link loop")
	ErrHardlinkDir     = errors.New("tree: directories can't be hard linked")
	ErrHardlinkSelf    = errors.New("tree: self-referential hard link")
	ErrHardlinkOutside = errors.New("tree: hard link to a file outside the tree")
	ErrInvalidMode     = errors.New("tree: invalid file type in mode")
	ErrTooBig          = errors.New("tree: file too large")
	ErrContentTooLarge = errors.New("tree: inline content too large")
	ErrPathTooLong     = errors.New("tree: path longer than PATH_MAX")
	ErrEmptySymlink    = errors.New("tree: empty symlink target")
)

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Node is one inode of the tree (or, with LinkTo set, one extra name of an
// inode).
type Node struct {
	Name     string  // name in the parent; "" for the root
	Parent   *Node   // nil for the root
	Children []*Node // directories only, sorted by name (bytewise)
	LinkTo   *Node   // hard link target; the other fields are then unused

	Mode      uint32 // type and permission bits
	Nlink     uint32
	UID, GID  uint32
	Rdev      uint64
	Size      uint64
	MtimeSec  int64
	MtimeNsec uint32

	// Payload is a regular file's path in the object store (e.g.
	// "ab/cdef…", without a leading slash) or a symlink's target.
	Payload string
	// Content is a regular file's inline content, nil when not inline.
	Content []byte
	// Digest is the fs-verity digest of a regular file's content, or nil.
	Digest []byte
	// Xattrs in the order they were set (upstream keeps this order and
	// prints it; image writing sorts a copy).
	Xattrs []Xattr

	xattrSpace int // upstream's accounting of worst-case xattr space
}

// New returns a node with the given mode and a link count of 1.
func New(mode uint32) *Node {
	return &Node{Mode: mode, Nlink: 1}
}

// Type returns the file type bits of the mode.
func (n *Node) Type() uint32 { return n.Mode & ModeType }

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Mode&ModeType == ModeDir }

// IsRegular reports whether n is a regular file.
func (n *Node) IsRegular() bool { return n.Mode&ModeType == ModeRegular }

// IsWhiteout reports whether n is an overlayfs whiteout (char device 0/0).
func (n *Node) IsWhiteout() bool { return n.Mode&ModeType == ModeChar && n.Rdev == 0 }

// ValidMode reports whether the file type in mode is one composefs stores.
func ValidMode(mode uint32) bool {
	switch mode & ModeType {
	case ModeRegular, ModeDir, ModeSymlink, ModeBlock, ModeChar, ModeSocket, ModeFIFO:
		return true
	}
	return false
}

// Target follows hard links to the node that holds the inode's data.
func (n *Node) Target() (*Node, error) {
	t := n
	for t.LinkTo != nil {
		t = t.LinkTo
		if t == n {
			return nil, ErrHardlinkLoop
		}
	}
	return t, nil
}

// Inode returns the node holding n's data (n itself when n is no hard link).
// It returns n for a hard link loop, which Validate reports.
func (n *Node) Inode() *Node {
	t, err := n.Target()
	if err != nil {
		return n
	}
	return t
}

// search returns the index of name in n.Children and whether it is there.
func (n *Node) search(name string) (int, bool) {
	c := n.Children
	// Appending in order is the common case.
	if len(c) > 0 {
		last := c[len(c)-1].Name
		if name == last {
			return len(c) - 1, true
		}
		if name > last {
			return len(c), false
		}
	}
	i := sort.Search(len(c), func(i int) bool { return c[i].Name >= name })
	return i, i < len(c) && c[i].Name == name
}

// Lookup returns the child called name, or nil.
func (n *Node) Lookup(name string) *Node {
	if i, ok := n.search(name); ok {
		return n.Children[i]
	}
	return nil
}

// AddChild inserts child under name, keeping the children sorted.
func (n *Node) AddChild(name string, child *Node) error {
	if !n.IsDir() {
		return ErrNotDir
	}
	if name == "" {
		return ErrEmptyName
	}
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	if child.Parent != nil || child.Name != "" {
		return ErrAlreadyLinked
	}
	i, ok := n.search(name)
	if ok {
		return ErrExists
	}
	n.Children = append(n.Children, nil)
	copy(n.Children[i+1:], n.Children[i:])
	n.Children[i] = child
	child.Parent = n
	child.Name = name
	return nil
}

// RemoveChild removes the child called name and returns it, or nil.
func (n *Node) RemoveChild(name string) *Node {
	i, ok := n.search(name)
	if !ok {
		return nil
	}
	c := n.Children[i]
	n.Children = append(n.Children[:i], n.Children[i+1:]...)
	c.Parent = nil
	c.Name = ""
	return c
}

// CheckName reports whether name is usable as a single path component.
func CheckName(name string) error {
	switch {
	case name == "":
		return ErrEmptyName
	case len(name) > MaxNameLen:
		return ErrNameTooLong
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// MakeHardlink turns n into another name of target's inode and raises the
// target's link count.
func (n *Node) MakeHardlink(target *Node) error {
	if n == target {
		return ErrHardlinkSelf
	}
	t, err := target.Target()
	if err != nil {
		return err
	}
	if t == n {
		return ErrHardlinkLoop
	}
	if t.IsDir() || n.IsDir() {
		return ErrHardlinkDir
	}
	n.LinkTo = target
	target.Nlink++
	return nil
}

// GetXattr returns the value of the named xattr.
func (n *Node) GetXattr(name string) ([]byte, bool) {
	for _, x := range n.Xattrs {
		if x.Name == name {
			return x.Value, true
		}
	}
	return nil, false
}

// RemoveXattr removes the named xattr. As upstream does, the last xattr
// takes the removed one's place.
func (n *Node) RemoveXattr(name string) bool {
	for i, x := range n.Xattrs {
		if x.Name != name {
			continue
		}
		last := len(n.Xattrs) - 1
		n.Xattrs[i] = n.Xattrs[last]
		n.Xattrs = n.Xattrs[:last]
		if len(n.Xattrs) > 0 {
			n.xattrSpace -= 2*xattrEntryMeta - 1 + len(name) + len(x.Value)
		} else {
			n.xattrSpace = 0
		}
		return true
	}
	return false
}

// SetXattr sets an xattr from outside input (a dump, a directory), within
// the space upstream allows such input.
func (n *Node) SetXattr(name string, value []byte) error {
	return n.SetXattrLimit(name, value, ExternalXattrSpace)
}

// SetXattrLimit sets an xattr, replacing any with the same name, refusing it
// when the inode's accounted xattr space would pass limit.
func (n *Node) SetXattrLimit(name string, value []byte, limit int) error {
	if name == "" || len(name) > MaxXattrNameLen {
		return fmt.Errorf("%w: length %d", ErrXattrName, len(name))
	}
	if len(value) > MaxXattrValueLen {
		return fmt.Errorf("%w: %d bytes", ErrXattrValue, len(value))
	}
	n.RemoveXattr(name)
	size := 2*xattrEntryMeta - 1 + len(name) + len(value)
	if len(n.Xattrs) == 0 {
		size += xattrHeaderSize
	}
	if n.xattrSpace+size > limit {
		return fmt.Errorf("%w: %s", ErrXattrSpace, name)
	}
	n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: append([]byte(nil), value...)})
	n.xattrSpace += size
	return nil
}

// XattrSpace returns upstream's accounting of the space n's xattrs may
// take in an image (a worst case, checked against the limits above).
func (n *Node) XattrSpace() int { return n.xattrSpace }

// RenameXattr renames the i-th xattr in place without any checks (used to
// escape overlay xattrs; the caller guarantees no collision).
func (n *Node) RenameXattr(i int, name string) {
	n.Xattrs[i].Name = name
}

// SetSymlink sets a symlink's target, and its size to the target's length.
func (n *Node) SetSymlink(target string) error {
	if target == "" {
		return ErrEmptySymlink
	}
	if len(target) > MaxPathLen {
		return ErrPathTooLong
	}
	n.Payload = target
	n.Size = uint64(len(target))
	return nil
}

// SetContent sets a regular file's inline content and its size.
func (n *Node) SetContent(data []byte) error {
	if len(data) > MaxInlineContent {
		return fmt.Errorf("%w: %d bytes", ErrContentTooLarge, len(data))
	}
	if len(data) == 0 {
		n.Content = nil
	} else {
		n.Content = append([]byte(nil), data...)
	}
	n.Size = uint64(len(data))
	return nil
}

// Path returns the node's absolute path ("/" for the root).
func (n *Node) Path() string {
	if n.Parent == nil {
		return "/"
	}
	var parts []string
	for p := n; p.Parent != nil; p = p.Parent {
		parts = append(parts, p.Name)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

// LookupPath resolves a slash-separated path from n, following no links.
func (n *Node) LookupPath(path string) *Node {
	cur := n
	for _, part := range strings.Split(path, "/") {
		if part == "" {
			continue
		}
		if cur = cur.Lookup(part); cur == nil {
			return nil
		}
	}
	return cur
}

// Walk calls fn for n and every node below it, depth first, parents before
// children, children in name order. Hard link nodes are visited too. If fn
// returns an error, the walk stops with it; SkipDir skips a directory's
// children.
func (n *Node) Walk(fn func(path string, n *Node) error) error {
	return walk(n.Path(), n, fn)
}

// SkipDir, returned by a Walk function, skips the directory's children (as
// fs.SkipDir does for fs.WalkDir).
//
//lint:ignore ST1012 named like fs.SkipDir, which it mirrors
var SkipDir = errors.New("skip this directory")

func walk(path string, n *Node, fn func(string, *Node) error) error {
	if err := fn(path, n); err != nil {
		if err == SkipDir {
			return nil
		}
		return err
	}
	for _, c := range n.Children {
		var p string
		if path == "/" {
			p = "/" + c.Name
		} else {
			p = path + "/" + c.Name
		}
		if err := walk(p, c, fn); err != nil {
			return err
		}
	}
	return nil
}

// Clone returns a deep copy of the tree below n, with hard links pointing
// into the copy where their targets are inside it.
func (n *Node) Clone() *Node {
	m := make(map[*Node]*Node)
	c := clone(n, m)
	var fix func(*Node)
	fix = func(x *Node) {
		if x.LinkTo != nil {
			if t, ok := m[x.LinkTo]; ok {
				x.LinkTo = t
			}
		}
		for _, ch := range x.Children {
			fix(ch)
		}
	}
	fix(c)
	return c
}

func clone(n *Node, m map[*Node]*Node) *Node {
	c := &Node{
		LinkTo: n.LinkTo, Mode: n.Mode, Nlink: n.Nlink, UID: n.UID, GID: n.GID,
		Rdev: n.Rdev, Size: n.Size, MtimeSec: n.MtimeSec, MtimeNsec: n.MtimeNsec,
		Payload: n.Payload, xattrSpace: n.xattrSpace,
	}
	if n.Content != nil {
		c.Content = append([]byte(nil), n.Content...)
	}
	if n.Digest != nil {
		c.Digest = append([]byte(nil), n.Digest...)
	}
	if len(n.Xattrs) > 0 {
		c.Xattrs = make([]Xattr, len(n.Xattrs))
		for i, x := range n.Xattrs {
			c.Xattrs[i] = Xattr{Name: x.Name, Value: append([]byte(nil), x.Value...)}
		}
	}
	m[n] = c
	if len(n.Children) > 0 {
		c.Children = make([]*Node, len(n.Children))
		for i, ch := range n.Children {
			cc := clone(ch, m)
			cc.Parent = c
			cc.Name = ch.Name
			c.Children[i] = cc
		}
	}
	return c
}
