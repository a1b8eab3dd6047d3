package erofs

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors. Every error the reader returns for a bad image wraps one
// of them, and through them [fs.ErrInvalid], so errors.Is(err,
// fs.ErrInvalid) tells a bad image from an I/O error.
var (
	// ErrNotEROFS reports an image too small to hold a superblock, or one
	// without the EROFS magic number.
	ErrNotEROFS = fmt.Errorf("erofs: not an EROFS image: %w", fs.ErrInvalid)
	// ErrCorrupt reports an image whose structures are inconsistent: an
	// offset, size, count or index pointing outside the image or outside
	// the structure that holds it, a malformed directory block, a cycle.
	ErrCorrupt = fmt.Errorf("erofs: corrupt image: %w", fs.ErrInvalid)
	// ErrUnsupported reports a valid EROFS feature this reader does not
	// implement: unknown incompatible feature bits, a block size other than
	// 512 to 4096 bytes, extra devices, long xattr name prefixes, unknown
	// inode format bits or chunk formats.
	ErrUnsupported = fmt.Errorf("erofs: unsupported feature: %w", fs.ErrInvalid)
	// ErrCompressed reports compressed data (a compressed inode layout or a
	// compression feature bit). It wraps ErrUnsupported.
	ErrCompressed = fmt.Errorf("compressed data: %w", ErrUnsupported)
	// ErrLimit reports an image that would make the reader do more work or
	// allocate more memory than its size justifies (see README.md).
	ErrLimit = fmt.Errorf("erofs: image exceeds reader limits: %w", fs.ErrInvalid)
)

// Errors about using an inode as what it is not. They do not mean the image
// is bad.
var (
	// ErrNotDir reports a directory operation on an inode that is not a
	// directory.
	ErrNotDir = errors.New("erofs: not a directory")
	// ErrNotSymlink reports Readlink on an inode that is not a symlink.
	ErrNotSymlink = errors.New("erofs: not a symbolic link")
)

// Error describes a problem found at a place in the image. Err is one of
// the sentinel errors, so errors.Is works on an *Error.
type Error struct {
	Nid    uint64 // the inode concerned, when HasNid
	HasNid bool
	Offset int64  // byte offset in the image, or -1
	Detail string // what is wrong
	Err    error  // sentinel: ErrCorrupt, ErrUnsupported, ...
}

// Error formats the error with its location.
func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	switch {
	case e.HasNid && e.Offset >= 0:
		return fmt.Sprintf("%s (nid %d, offset %#x)", s, e.Nid, e.Offset)
	case e.HasNid:
		return fmt.Sprintf("%s (nid %d)", s, e.Nid)
	case e.Offset >= 0:
		return fmt.Sprintf("%s (offset %#x)", s, e.Offset)
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// errAt returns an *Error at a byte offset, with no inode.
func errAt(sentinel error, off int64, format string, args ...any) error {
	return &Error{Offset: off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
}

// errNid returns an *Error about inode nid at a byte offset (-1 for none).
func errNid(sentinel error, nid uint64, off int64, format string, args ...any) error {
	return &Error{Nid: nid, HasNid: true, Offset: off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
}
