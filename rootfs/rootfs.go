// Package rootfs applies composefs-rs's conventions for container root
// file systems to a tree, so that gocfs computes the image digests cfsctl
// computes for the same root ("cfsctl create-image" and "compute-id" apply
// them by default).
//
// A container image's root directory has no well-defined metadata (layer
// tarballs often lack an entry for it, and runtimes ignore the one they
// have), /run is a tmpfs at run time (build tools leave mount-point stubs
// there), and a file system read from a running container carries the
// build host's extended attributes (SELinux labels of the container).
// [TransformForOCI] makes the result depend on the image's content alone:
//
//	root, err := scan.Dir("rootfs", scan.Options{})
//	err = rootfs.TransformForOCI(root, rootfs.AllowlistOnly)
//
// It copies /usr's mode, owner, mtime and xattrs to the root directory,
// empties /run (giving it /usr's mtime), and keeps only the xattrs the
// filter allows: security.capability, and with [KeepUserXattrs] user.*
// too. These are the steps of composefs-rs 0.9's transform_for_oci, in
// its order.
package rootfs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/tree"
)

// XattrFilter says which extended attributes TransformForOCI keeps.
type XattrFilter int

const (
	// AllowlistOnly keeps only the xattrs of [Allowlist] (composefs-rs's
	// default, "allowlist-only").
	AllowlistOnly XattrFilter = iota
	// KeepUserXattrs keeps user.* xattrs besides those of the allowlist
	// ("keep-user-xattrs").
	KeepUserXattrs
)

// Allowlist names the xattrs a container root keeps whatever the filter:
// file capabilities, which are content. SELinux labels are not in it: they
// come from the build host.
var Allowlist = []string{"security.capability"}

// Errors returned by this package (wrapped, with the path).
var (
	// ErrNoUsr reports a root without a /usr directory to take the root
	// directory's metadata from.
	ErrNoUsr = errors.New("rootfs: no /usr directory")
	// ErrNotDir reports a /run that is not a directory.
	ErrNotDir = errors.New("rootfs: not a directory")
	// ErrFilter reports an unknown xattr filter name.
	ErrFilter = errors.New("rootfs: invalid xattr filtering mode")
)

// String returns the filter's name as cfsctl's --xattrs takes it.
func (f XattrFilter) String() string {
	switch f {
	case AllowlistOnly:
		return "allowlist-only"
	case KeepUserXattrs:
		return "keep-user-xattrs"
	}
	return fmt.Sprintf("XattrFilter(%d)", int(f))
}

// ParseXattrFilter parses "allowlist-only" or "keep-user-xattrs".
func ParseXattrFilter(s string) (XattrFilter, error) {
	for _, f := range []XattrFilter{AllowlistOnly, KeepUserXattrs} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w %q (expected \"allowlist-only\" or \"keep-user-xattrs\")", ErrFilter, s)
}

// Keeps reports whether the filter keeps the xattr called name.
func (f XattrFilter) Keeps(name string) bool {
	for _, a := range Allowlist {
		if name == a {
			return true
		}
	}
	return f == KeepUserXattrs && strings.HasPrefix(name, "user.")
}

// TransformForOCI makes root, the root directory of a container file
// system, independent of how it was obtained (see the package
// documentation). It fails before changing anything when root has no
// /usr directory or has a /run that is not a directory.
func TransformForOCI(root *tree.Node, filter XattrFilter) error {
	usr := root.Lookup("usr")
	if usr == nil || !usr.IsDir() {
		return fmt.Errorf("%w: the root directory's metadata is copied from /usr (--no-propagate-usr-to-root skips that)", ErrNoUsr)
	}
	run := root.Lookup("run")
	if run != nil && !run.IsDir() {
		return fmt.Errorf("%w: /run", ErrNotDir)
	}
	if err := copyMetadata(root, usr); err != nil {
		return err
	}
	if run != nil {
		run.MtimeSec, run.MtimeNsec = usr.MtimeSec, usr.MtimeNsec
		emptyDir(root, run)
	}
	return filterXattrs(root, filter)
}

// copyMetadata gives dst src's mode, owner, mtime and xattrs.
func copyMetadata(dst, src *tree.Node) error {
	dst.Mode, dst.UID, dst.GID = src.Mode, src.UID, src.GID
	dst.MtimeSec, dst.MtimeNsec = src.MtimeSec, src.MtimeNsec
	return setXattrs(dst, src.Xattrs)
}

// setXattrs replaces n's xattrs with xs, in their order.
func setXattrs(n *tree.Node, xs []tree.Xattr) error {
	xs = append([]tree.Xattr(nil), xs...)
	for len(n.Xattrs) > 0 {
		n.RemoveXattr(n.Xattrs[len(n.Xattrs)-1].Name)
	}
	for _, x := range xs {
		if err := n.SetXattr(x.Name, x.Value); err != nil {
			return fmt.Errorf("rootfs: %s: %w", n.Path(), err)
		}
	}
	return nil
}

// FilterXattrs keeps, on every inode of root, the xattrs filter allows (in
// their order): the last step of TransformForOCI alone.
func FilterXattrs(root *tree.Node, filter XattrFilter) error { return filterXattrs(root, filter) }

// filterXattrs keeps, on every inode of root, the xattrs filter allows (in
// their order).
func filterXattrs(root *tree.Node, filter XattrFilter) error {
	return root.Walk(func(_ string, n *tree.Node) error {
		if n.LinkTo != nil {
			return nil // the inode is visited through its own node
		}
		var keep []tree.Xattr
		for _, x := range n.Xattrs {
			if filter.Keeps(x.Name) {
				keep = append(keep, x)
			}
		}
		if len(keep) == len(n.Xattrs) {
			return nil
		}
		return setXattrs(n, keep)
	})
}

// emptyDir removes everything below dir, a directory of the tree rooted at
// root. Hard links stay consistent: a file below dir that also has a name
// elsewhere keeps its inode under its first such name (in walk order),
// and every inode's link count drops by the names removed.
func emptyDir(root, dir *tree.Node) {
	removed := make(map[*tree.Node]bool)
	dropped := make(map[*tree.Node]uint32) // inode -> names removed
	for _, c := range dir.Children {
		c.Walk(func(_ string, n *tree.Node) error {
			removed[n] = true
			if n.LinkTo == nil {
				if !n.IsDir() {
					dropped[n]++
				}
			} else if t, err := n.Target(); err == nil {
				dropped[t]++
			}
			return nil
		})
	}
	moved := make(map[*tree.Node]*tree.Node) // removed inode -> its new holder
	root.Walk(func(_ string, n *tree.Node) error {
		if n == dir {
			return tree.SkipDir
		}
		t, err := n.Target()
		if n.LinkTo == nil || err != nil || !removed[t] {
			return nil
		}
		if h := moved[t]; h != nil {
			n.LinkTo = h
			return nil
		}
		takeInode(n, t)
		unlink(n, dropped[t])
		moved[t] = n
		return nil
	})
	for t, d := range dropped {
		if !removed[t] {
			unlink(t, d)
		}
	}
	for len(dir.Children) > 0 {
		dir.RemoveChild(dir.Children[0].Name)
	}
}

// unlink lowers n's link count by the d names removed (to no less than 1:
// a count read from a dump file need not be the number of names).
func unlink(n *tree.Node, d uint32) {
	if n.Nlink > d {
		n.Nlink -= d
	} else {
		n.Nlink = 1
	}
}

// takeInode makes n, a hard link to t, hold t's inode itself.
func takeInode(n, t *tree.Node) {
	name, parent := n.Name, n.Parent
	*n = *t.Clone()
	n.Name, n.Parent, n.LinkTo = name, parent, nil
}
