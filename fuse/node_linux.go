//go:build linux

package fuse

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/schema"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is one inode of the image: a directory, a file, a symlink, a device,
// a FIFO or a socket. Nodes are made on lookup and dropped when the kernel
// forgets them; hard links share one (go-fuse finds it by inode number).
type node struct {
	fusefs.Inode
	fsys      *fileSystem
	in        *erofs.Inode
	parentIno uint64 // directories: the inode number ".." shows

	metaOnce sync.Once
	meta     *nodeMeta
	metaErr  error

	dirOnce sync.Once
	dir     *dirIndex
	dirErr  error
}

var (
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeListxattrer    = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeReader         = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
)

// nodeMeta is what a node's xattrs say, decoded once.
type nodeMeta struct {
	xattrs []xattr // as the kernel mount shows them, in on-disk order

	// Regular files only.
	redirect    string // object path, relative to a basedir; "" for none
	hasRedirect bool
	digestAlg   fsverity.Algorithm // 0: no digest
	digest      []byte
	badMetacopy bool // a metacopy xattr overlayfs would refuse
}

type xattr struct {
	name    string
	value   []byte
	trusted bool
}

// ino is the inode number the mount shows for nid: the nid itself, as
// EROFS (and so the kernel composefs mount) does. Nid 0, which go-fuse
// would take for "no number", gets one no real nid can have.
func ino(nid uint64) uint64 {
	if nid == 0 {
		return 1 << 62
	}
	return nid
}

// isWhiteout tells whether in is an overlayfs whiteout (a character device
// 0/0), which the kernel mount hides.
func isWhiteout(in *erofs.Inode) bool {
	return in.Type() == erofs.ModeChar && in.Rdev == 0
}

// fillAttr fills a FUSE attribute from an inode, as EROFS fills a stat.
func fillAttr(in *erofs.Inode, a *gofuse.Attr) {
	a.Ino = ino(in.Nid)
	a.Mode = in.Mode
	a.Nlink = in.Nlink
	a.Owner = gofuse.Owner{Uid: in.UID, Gid: in.GID}
	a.Size = in.Size
	a.Blksize = erofs.BlockSize
	a.Blocks = (in.Size + erofs.BlockSize - 1) / erofs.BlockSize * (erofs.BlockSize / 512)
	if t := in.Type(); t == erofs.ModeChar || t == erofs.ModeBlock {
		a.Rdev = in.Rdev
	}
	sec, nsec := uint64(in.MtimeSec), in.MtimeNsec
	a.Mtime, a.Mtimensec = sec, nsec
	a.Atime, a.Atimensec = sec, nsec
	a.Ctime, a.Ctimensec = sec, nsec
}

func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	fillAttr(n.in, &out.Attr)
	n.objectBlocks(&out.Attr)
	return 0
}

// objectBlocks reports, for a file whose content is in the object store,
// the object's block count, as the kernel mount does (it can differ from
// the size's: ext4 counts an fs-verity Merkle tree among a file's blocks).
// Where the object can't be found, the count from the size stays.
func (n *node) objectBlocks(a *gofuse.Attr) {
	if !n.in.IsRegular() || n.in.Size == 0 {
		return
	}
	m, errno := n.loadMeta()
	if errno != 0 || !m.hasRedirect || !validObjectPath(m.redirect) {
		return
	}
	for _, s := range n.fsys.stores {
		f, err := s.OpenPath(m.redirect)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		f.Close()
		if err == nil {
			a.Blocks = uint64(st.Blocks)
		}
		return
	}
}

func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	sb := n.fsys.img.SuperBlock()
	bs := uint64(n.fsys.img.BlockSize())
	out.Blocks = uint64(sb.Blocks)
	out.Bsize = uint32(bs)
	out.Frsize = uint32(bs)
	out.Files = sb.Inos
	out.NameLen = erofs.MaxNameLen
	return 0
}

// path is the node's path in the image, for messages.
func (n *node) path() string {
	p := n.Path(nil)
	if p == "" {
		return "/"
	}
	return "/" + p
}

// loadMeta decodes the node's xattrs once.
func (n *node) loadMeta() (*nodeMeta, syscall.Errno) {
	n.metaOnce.Do(func() { n.meta, n.metaErr = n.fsys.decodeMeta(n.in) })
	if n.metaErr != nil {
		n.fsys.corrupt(n.in.Nid, n.metaErr)
		return nil, syscall.EIO
	}
	return n.meta, 0
}

// decodeMeta reads in's xattrs and sorts out what they mean: the names
// the mount shows (as EROFS and overlayfs show them), and a regular file's
// redirect and metacopy (decoded by package schema; the first of each
// counts, as for overlayfs).
func (fsys *fileSystem) decodeMeta(in *erofs.Inode) (*nodeMeta, error) {
	m := &nodeMeta{}
	if in.XattrCount == 0 {
		return m, nil
	}
	xs, err := in.Xattrs()
	if err != nil {
		return nil, err
	}
	regular := in.IsRegular()
	seenRedirect, seenMetacopy := false, false
	for _, x := range xs {
		name, ok := fsys.shownName(&x)
		if !ok {
			continue
		}
		if regular && name == schema.Redirect && !seenRedirect {
			seenRedirect = true
			m.redirect, _ = schema.RedirectPayload(x.Value)
			m.hasRedirect = true
		}
		if regular && name == schema.Metacopy && !seenMetacopy {
			seenMetacopy = true
			d, err := schema.ParseMetacopy(x.Value)
			m.badMetacopy = err != nil
			if !d.IsZero() {
				m.digestAlg, m.digest = d.Algorithm(), d.Bytes()
			}
		}
		shown, ok := schema.Unescape(name)
		if !ok {
			// overlayfs's own: hidden.
			continue
		}
		m.xattrs = append(m.xattrs, xattr{name: shown, value: x.Value, trusted: x.Index == erofs.XattrIndexTrusted})
	}
	return m, nil
}

// shownName returns the full name of x as EROFS reads it, and false for
// an xattr EROFS does not show: one of a name index without a handler,
// and POSIX ACLs with a name suffix or on an image without the ACL flag
// (mounted noacl).
func (fsys *fileSystem) shownName(x *erofs.Xattr) (string, bool) {
	switch x.Index {
	case erofs.XattrIndexUser, erofs.XattrIndexSecurity, erofs.XattrIndexTrusted:
		return x.FullName(), true
	case erofs.XattrIndexPosixACLAccess, erofs.XattrIndexPosixACLDefault:
		return x.FullName(), x.Name == "" && fsys.acl
	}
	return "", false
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno, ok := n.fsys.noXattrsErrno(); ok {
		return 0, errno
	}
	m, errno := n.loadMeta()
	if errno != 0 {
		return 0, errno
	}
	for _, x := range m.xattrs {
		if x.name == attr {
			if len(dest) < len(x.value) {
				return uint32(len(x.value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	m, errno := n.loadMeta()
	if errno != 0 {
		return 0, errno
	}
	// As the kernel: trusted.* names are listed to privileged callers
	// only (the VFS already refuses to read them to others).
	var trustedOK, asked bool
	size := 0
	var buf []byte
	for _, x := range m.xattrs {
		if x.trusted {
			if !asked {
				trustedOK, asked = callerIsAdmin(ctx), true
			}
			if !trustedOK {
				continue
			}
		}
		size += len(x.name) + 1
		if len(dest) > 0 {
			buf = append(append(buf, x.name...), 0)
		}
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	return uint32(copy(dest, buf)), 0
}

// callerIsAdmin tells whether the process making a request has
// CAP_SYS_ADMIN in its effective set (read from /proc; root is taken for
// one without looking).
func callerIsAdmin(ctx context.Context) bool {
	c, ok := ctx.(*gofuse.Context)
	if !ok {
		return false
	}
	if c.Uid == 0 {
		return true
	}
	if c.Pid == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(c.Pid), 10) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return false
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.in.Readlink()
	if err != nil {
		n.fsys.corrupt(n.in.Nid, err)
		return nil, syscall.EIO
	}
	if i := strings.IndexByte(target, 0); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return nil, syscall.EIO
	}
	return []byte(target), 0
}

// Open opens a regular file: one served from the image needs no handle;
// one in the object store gets a handle on its object, checked first.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.in.IsRegular() {
		return nil, 0, syscall.EIO
	}
	m, errno := n.loadMeta()
	if errno != 0 {
		return nil, 0, errno
	}
	if !m.hasRedirect || n.in.Size == 0 {
		return nil, gofuse.FOPEN_KEEP_CACHE, 0
	}
	h, errno := n.fsys.openObject(n, m)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, gofuse.FOPEN_KEEP_CACHE, 0
}

// Read reads a file: through its object handle, or from the image.
func (n *node) Read(ctx context.Context, f fusefs.FileHandle, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	if h, ok := f.(*objectHandle); ok {
		return h.Read(ctx, dest, off)
	}
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if uint64(off) >= n.in.Size {
		return gofuse.ReadResultData(nil), 0
	}
	k := int(min(uint64(len(dest)), n.in.Size-uint64(off)))
	got, err := n.in.ReadAt(dest[:k], off)
	if err != nil && err != io.EOF {
		n.fsys.corrupt(n.in.Nid, err)
		return nil, syscall.EIO
	}
	return gofuse.ReadResultData(dest[:got]), 0
}

// dirIndex is a directory's entries as the mount shows them: without "."
// and "..", whiteouts and names no file system could hold.
type dirIndex struct {
	ents   []dirEnt
	byName map[string]int // for larger directories
}

type dirEnt struct {
	name string
	nid  uint64
	mode uint32 // file type bits, from the entry
}

const dirIndexMin = 16 // entries from which a directory gets a map

func (n *node) loadDir() (*dirIndex, syscall.Errno) {
	if !n.in.IsDir() {
		return nil, syscall.ENOTDIR
	}
	n.dirOnce.Do(func() { n.dir, n.dirErr = n.fsys.readDir(n.in) })
	if n.dirErr != nil {
		n.fsys.corrupt(n.in.Nid, n.dirErr)
		return nil, syscall.EIO
	}
	return n.dir, 0
}

var ftModes = [...]uint32{
	erofs.FTRegFile: syscall.S_IFREG,
	erofs.FTDir:     syscall.S_IFDIR,
	erofs.FTChrdev:  syscall.S_IFCHR,
	erofs.FTBlkdev:  syscall.S_IFBLK,
	erofs.FTFifo:    syscall.S_IFIFO,
	erofs.FTSock:    syscall.S_IFSOCK,
	erofs.FTSymlink: syscall.S_IFLNK,
}

func (fsys *fileSystem) readDir(in *erofs.Inode) (*dirIndex, error) {
	d := &dirIndex{}
	err := in.ReadDirFunc(func(e erofs.DirEntry) error {
		if e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
			return nil
		}
		var mode uint32
		if int(e.FileType) < len(ftModes) {
			mode = ftModes[e.FileType]
		}
		if mode == syscall.S_IFCHR {
			// Perhaps a whiteout: only the inode tells.
			child, err := fsys.img.Inode(e.Nid)
			if err != nil {
				return err
			}
			if isWhiteout(child) {
				return nil
			}
		}
		d.ents = append(d.ents, dirEnt{name: e.Name, nid: e.Nid, mode: mode})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(d.ents) >= dirIndexMin {
		d.byName = make(map[string]int, len(d.ents))
		for i := len(d.ents) - 1; i >= 0; i-- {
			d.byName[d.ents[i].name] = i // the first of duplicates wins
		}
	}
	return d, nil
}

func (d *dirIndex) find(name string) (dirEnt, bool) {
	if d.byName != nil {
		i, ok := d.byName[name]
		if !ok {
			return dirEnt{}, false
		}
		return d.ents[i], true
	}
	for _, e := range d.ents {
		if e.name == name {
			return e, true
		}
	}
	return dirEnt{}, false
}

func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	d, errno := n.loadDir()
	if errno != 0 {
		return nil, errno
	}
	e, ok := d.find(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, e, out)
}

// child returns the node of entry e of directory n.
func (n *node) child(ctx context.Context, e dirEnt, out *gofuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	in, err := n.fsys.img.Inode(e.nid)
	if err != nil {
		n.fsys.corrupt(e.nid, err)
		return nil, syscall.EIO
	}
	if isWhiteout(in) {
		return nil, syscall.ENOENT
	}
	if in.IsDir() {
		if err := n.fsys.dirs.Enter(n.in.Nid, e.name, e.nid); err != nil {
			n.fsys.corrupt(e.nid, err)
			return nil, syscall.EIO
		}
	}
	fillAttr(in, &out.Attr)
	c := &node{fsys: n.fsys, in: in, parentIno: ino(n.in.Nid)}
	c.objectBlocks(&out.Attr)
	return n.NewInode(ctx, c, fusefs.StableAttr{Mode: in.Type(), Ino: ino(e.nid)}), 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	d, errno := n.loadDir()
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{n: n, d: d}, gofuse.FOPEN_KEEP_CACHE | gofuse.FOPEN_CACHE_DIR, 0
}

// dirHandle is an open directory: ".", "..", then the entries. Offsets
// count entries.
type dirHandle struct {
	n   *node
	d   *dirIndex
	pos int
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileLookuper     = (*dirHandle)(nil)
)

func (h *dirHandle) Readdirent(ctx context.Context) (*gofuse.DirEntry, syscall.Errno) {
	i := h.pos
	var de gofuse.DirEntry
	switch {
	case i == 0:
		de = gofuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: ino(h.n.in.Nid)}
	case i == 1:
		de = gofuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: h.n.parentIno}
	case i-2 < len(h.d.ents):
		e := h.d.ents[i-2]
		de = gofuse.DirEntry{Name: e.name, Mode: e.mode, Ino: ino(e.nid)}
	default:
		return nil, 0
	}
	h.pos++
	de.Off = uint64(h.pos)
	return &de, 0
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > uint64(len(h.d.ents)+2) {
		return syscall.EINVAL
	}
	h.pos = int(off)
	return 0
}

// Lookup serves READDIRPLUS: the entry just returned is at hand, no need
// to search the directory for it.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if i := h.pos - 3; i >= 0 && i < len(h.d.ents) && h.d.ents[i].name == name {
		return h.n.child(ctx, h.d.ents[i], out)
	}
	return h.n.Lookup(ctx, name, out)
}
