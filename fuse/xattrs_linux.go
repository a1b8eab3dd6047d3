package fuse

import (
	"context"
	"errors"
	"syscall"

	"github.com/gocfs/gocfs/erofs"
)

// errHasXattrs stops the walk of scanXattrs at the first xattr found.
var errHasXattrs = errors.New("the image has xattrs")

// scanXattrs walks the whole image, after the mount is made, to find
// whether any of its inodes has an xattr the mount shows (overlayfs's own
// are hidden). When none has, Getxattr answers ENOSYS from then on, which
// makes the kernel stop asking (it answers EOPNOTSUPP itself, for every
// inode, for good): `ls -l`'s query of each entry's SELinux label then
// costs no round trip. Until the walk is done, or if it fails, queries
// are answered one by one as usual.
func (fsys *fileSystem) scanXattrs(ctx context.Context) {
	err := fsys.img.Walk(func(e *erofs.WalkEntry) ([]erofs.DirEntry, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if e.Again {
			return nil, nil
		}
		in, err := fsys.img.Inode(e.Nid)
		if err != nil {
			return nil, err
		}
		if in.XattrCount > 0 {
			m, err := fsys.decodeMeta(in)
			if err != nil {
				return nil, err
			}
			if len(m.xattrs) > 0 {
				return nil, errHasXattrs
			}
		}
		if !in.IsDir() {
			return nil, nil
		}
		return in.ReadDir()
	})
	if err == nil {
		fsys.noXattrs.Store(true)
	}
}

// noXattrsErrno is what Getxattr answers on an image without xattrs once
// scanXattrs has found it so: ENOSYS, which the kernel remembers.
func (fsys *fileSystem) noXattrsErrno() (syscall.Errno, bool) {
	if fsys.noXattrs.Load() {
		return syscall.ENOSYS, true
	}
	return 0, false
}
