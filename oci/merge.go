package oci

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// Attributes of a directory that no layer has a member for (the root, or a
// parent a layer creates implicitly): see docs/oci.md.
const (
	implicitDirMode = tree.ModeDir | 0o755
	implicitDirUID  = 0
	implicitDirGID  = 0
)

// inode is a file of the rootfs being merged; several names (hard links)
// may share one.
type inode struct {
	mode      uint32
	uid, gid  uint32
	rdev      uint64
	size      uint64
	mtimeSec  int64
	mtimeNsec uint32
	xattrs    []tree.Xattr
	link      string // symlink target
	content   []byte
	digest    []byte
}

// dirent is a name in the rootfs being merged.
type dirent struct {
	ino      *inode
	children map[string]*dirent // directories only
}

func newDir(ino *inode) *dirent { return &dirent{ino: ino, children: make(map[string]*dirent)} }

func (d *dirent) isDir() bool { return d.ino.mode&tree.ModeType == tree.ModeDir }

// Rules says how the layers of an OCI image become its root file system.
// The zero Rules are composefs-rs's (cfsctl oci pull and compute-id, see
// docs/oci.md): the image ID gocfs computes is then cfsctl's.
type Rules struct {
	// Xattrs says which extended attributes the files keep (cfsctl's
	// --xattrs): by default only security.capability.
	Xattrs rootfs.XattrFilter
	// Legacy selects the rules of gocfs before it took composefs-rs's:
	// a layer's whiteouts applied before its other members, no root,
	// /run or xattr transformation. Only for images pulled then.
	Legacy bool
}

// mergedFS merges layers, the way a container runtime applies them one on
// top of the other (docs/oci.md says exactly how).
type mergedFS struct {
	root  *dirent
	rules Rules
}

func newRootfs(rules Rules) *mergedFS {
	return &mergedFS{root: newDir(&inode{mode: implicitDirMode, uid: implicitDirUID, gid: implicitDirGID}), rules: rules}
}

// lookup returns the entry at p ("" for the root), or nil. No symlink is
// followed.
func (fs *mergedFS) lookup(p string) *dirent {
	d := fs.root
	if p == "" {
		return d
	}
	for _, c := range strings.Split(p, "/") {
		if !d.isDir() {
			return nil
		}
		if d = d.children[c]; d == nil {
			return nil
		}
	}
	return d
}

// parentDir returns the directory that holds p, creating missing
// directories as implicit ones. A component that exists but is not a
// directory (a symlink included: none is followed) is an error.
func (fs *mergedFS) parentDir(p string) (*dirent, string, error) {
	d := fs.root
	parts := strings.Split(p, "/")
	for i, c := range parts[:len(parts)-1] {
		next := d.children[c]
		if next == nil {
			next = newDir(&inode{mode: implicitDirMode, uid: implicitDirUID, gid: implicitDirGID})
			d.children[c] = next
		} else if !next.isDir() {
			return nil, "", fmt.Errorf("oci: %s: %s is not a directory (symlinks are not followed)", schema.Shorten(p), schema.Shorten(strings.Join(parts[:i+1], "/")))
		}
		d = next
	}
	return d, parts[len(parts)-1], nil
}

// apply merges one layer's entries over what is there, in archive order,
// as composefs-rs's process_entry (crates/composefs-oci/src/image.rs):
// a whiteout removes its name at the point it comes, an opaque marker
// empties its directory there (of what this layer put in it before it,
// too), any other member adds or replaces its name.
func (fs *mergedFS) apply(entries []entry) error {
	if fs.rules.Legacy {
		return fs.applyLegacy(entries)
	}
	for i := range entries {
		e := &entries[i]
		switch e.kind {
		case entryWhiteout:
			fs.whiteout(e.path)
		case entryOpaque:
			fs.opaque(e.path)
		default:
			if err := fs.add(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyLegacy is apply as gocfs did before Rules: first every whiteout
// and opaque marker of the layer, which then only hide what lower layers
// have, then every other entry in archive order.
func (fs *mergedFS) applyLegacy(entries []entry) error {
	for _, e := range entries {
		switch e.kind {
		case entryWhiteout:
			fs.whiteout(e.path)
		case entryOpaque:
			fs.opaque(e.path)
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.kind != entryAdd {
			continue
		}
		if err := fs.add(e); err != nil {
			return err
		}
	}
	return nil
}

// whiteout removes the name p, if its directory is there.
func (fs *mergedFS) whiteout(p string) {
	i := strings.LastIndexByte(p, '/')
	parent, name := fs.root, p
	if i >= 0 {
		parent, name = fs.lookup(p[:i]), p[i+1:]
	}
	if parent != nil && parent.isDir() {
		delete(parent.children, name)
	}
}

// opaque empties the directory p, if it is there.
func (fs *mergedFS) opaque(p string) {
	if d := fs.lookup(p); d != nil && d.isDir() {
		d.children = make(map[string]*dirent)
	}
}

func (fs *mergedFS) add(e *entry) error {
	if e.path == "" {
		if e.hardlink || e.mode&tree.ModeType != tree.ModeDir {
			return fmt.Errorf("oci: the root is not a directory in a layer")
		}
		fs.root.ino.setAttrs(e)
		return nil
	}
	var ino *inode
	if e.hardlink {
		t := fs.lookup(e.link)
		if t == nil {
			return fmt.Errorf("oci: %s: hard link to %s, which does not exist", schema.Shorten(e.path), schema.Shorten(e.link))
		}
		if t.isDir() {
			return fmt.Errorf("oci: %s: hard link to %s, a directory", schema.Shorten(e.path), schema.Shorten(e.link))
		}
		ino = t.ino
	}
	parent, name, err := fs.parentDir(e.path)
	if err != nil {
		return err
	}
	old := parent.children[name]
	switch {
	case ino != nil:
		parent.children[name] = &dirent{ino: ino}
	case old != nil && old.isDir() && e.mode&tree.ModeType == tree.ModeDir:
		// A directory over a directory: new attributes, same entries.
		old.ino.setAttrs(e)
	case e.mode&tree.ModeType == tree.ModeDir:
		d := newDir(&inode{})
		d.ino.setAttrs(e)
		parent.children[name] = d
	default:
		ino := &inode{}
		ino.setAttrs(e)
		parent.children[name] = &dirent{ino: ino}
	}
	return nil
}

// setAttrs sets everything about ino from the entry.
func (ino *inode) setAttrs(e *entry) {
	*ino = inode{
		mode: e.mode, uid: e.uid, gid: e.gid, rdev: e.rdev, size: e.size,
		mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, xattrs: e.xattrs,
		link: e.link, content: e.content, digest: e.digest,
	}
}

// finish turns the merged layers into the image's root file system: the
// tree, then, as composefs-rs's transform_for_oci
// (crates/composefs/src/generic_tree.rs, called by create_filesystem in
// crates/composefs-oci/src/image.rs), the root directory given /usr's
// metadata, /run emptied and the xattrs filtered (package rootfs). A
// rootfs without /usr (which cfsctl refuses) keeps its root directory
// and /run as they are; its xattrs are filtered all the same.
func (fs *mergedFS) finish(alg fsverity.Algorithm) (*tree.Node, error) {
	root, err := fs.tree(alg)
	if err != nil || fs.rules.Legacy {
		return root, err
	}
	err = rootfs.TransformForOCI(root, fs.rules.Xattrs)
	if errors.Is(err, rootfs.ErrNoUsr) {
		err = rootfs.FilterXattrs(root, fs.rules.Xattrs)
	}
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	return root, nil
}

// tree turns the merged rootfs into a tree. alg is the repository's
// digest algorithm: regular files get their object's path as payload and,
// for SHA-256, their fs-verity digest, as scan gives them. Of the names of
// a hard-linked file, the first in the tree's walk order (depth first,
// names in byte order) holds the inode, as scan does with hard links
// preserved, so that the same rootfs gives the same image whichever way
// it was built.
func (fs *mergedFS) tree(alg fsverity.Algorithm) (*tree.Node, error) {
	holders := make(map[*inode]*tree.Node)
	root, err := fs.root.ino.node(alg)
	if err != nil {
		return nil, fmt.Errorf("oci: /: %w", err)
	}
	var walk func(d *dirent, n *tree.Node, p string) error
	walk = func(d *dirent, n *tree.Node, p string) error {
		names := make([]string, 0, len(d.children))
		for name := range d.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := d.children[name]
			cp := p + "/" + name
			var cn *tree.Node
			if h := holders[c.ino]; h != nil {
				cn = &tree.Node{Mode: h.Mode}
				if err := n.AddChild(name, cn); err != nil {
					return fmt.Errorf("oci: %s: %w", schema.Shorten(cp), err)
				}
				if err := cn.MakeHardlink(h); err != nil {
					return fmt.Errorf("oci: %s: %w", schema.Shorten(cp), err)
				}
				continue
			}
			cn, err := c.ino.node(alg)
			if err != nil {
				return fmt.Errorf("oci: %s: %w", schema.Shorten(cp), err)
			}
			if err := n.AddChild(name, cn); err != nil {
				return fmt.Errorf("oci: %s: %w", schema.Shorten(cp), err)
			}
			if c.isDir() {
				if err := walk(c, cn, cp); err != nil {
					return err
				}
			} else {
				holders[c.ino] = cn
			}
		}
		return nil
	}
	if err := walk(fs.root, root, ""); err != nil {
		return nil, err
	}
	return root, nil
}

// node makes the tree node of an inode.
func (ino *inode) node(alg fsverity.Algorithm) (*tree.Node, error) {
	n := tree.New(ino.mode)
	n.UID, n.GID, n.Rdev = ino.uid, ino.gid, ino.rdev
	n.MtimeSec, n.MtimeNsec = ino.mtimeSec, ino.mtimeNsec
	switch ino.mode & tree.ModeType {
	case tree.ModeSymlink:
		if err := n.SetSymlink(ino.link); err != nil {
			return nil, err
		}
	case tree.ModeRegular:
		n.Size = ino.size
		if ino.size > 0 {
			if len(ino.digest) != alg.Size() {
				return nil, fmt.Errorf("no %s digest for the content", alg)
			}
			n.Payload = objectDigest(alg, ino.digest).ObjectPath()
			// The object's fs-verity digest goes into the metacopy xattr
			// whatever the algorithm, as composefs-rs's writer puts it
			// (overlayfs checks SHA-512 ones too).
			n.Digest = ino.digest
			if ino.size <= tree.RecommendedInlineMax {
				if err := n.SetContent(ino.content); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, x := range ino.xattrs {
		if err := n.SetXattr(x.Name, x.Value); err != nil {
			return nil, err
		}
	}
	return n, nil
}
