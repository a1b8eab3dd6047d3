package mountd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/tree"
)

// Admit checks that the composefs image in r (size bytes, called name in
// reasons) is admissible: one the service mounts for an unprivileged
// caller. It returns nil, or a *Refusal (ErrImageRefused) saying why not.
// An image is admissible when
//
//   - it passes the structural check of package verify (every inode,
//     directory, name and xattr the kernel reads; redirects that name an
//     object of the store by its digest, so that none resolves outside
//     the data layers the service chose);
//   - it has no device node but overlayfs whiteouts (character device
//     0:0): nodev on a mount handed to a caller is not a guarantee, since
//     the caller, who has CAP_SYS_ADMIN in its own user namespace, can
//     clear it after attaching the mount;
//   - it is canonical: writing the tree read from it with package image,
//     at its own format version, reproduces it byte for byte. The kernel
//     then reads nothing that gocfs's writer would not have put there (no
//     stray padding, no unusual ordering or layout), which is the class of
//     images whose every byte the writer and the verifier account for.
//
// r must not change while Admit reads it and afterwards (the service
// admits a sealed private copy and mounts that copy).
func Admit(r io.ReaderAt, size int64, name string) error {
	_, err := admit(r, size, name)
	return err
}

// admit is Admit, returning the image's tree.
func admit(r io.ReaderAt, size int64, name string) (*tree.Node, error) {
	if err := mount.CheckImage(r, size, name); err != nil {
		return nil, refuse(ErrImageRefused, "the verifier refused it: %v", err)
	}
	root, err := image.Read(r, size, image.ReadOptions{})
	if err != nil {
		return nil, refuse(ErrImageRefused, "%s: reading its tree: %v", name, err)
	}
	if err := checkNoDevices(root); err != nil {
		return nil, err
	}
	if err := checkCanonical(r, size, name, root); err != nil {
		return nil, err
	}
	return root, nil
}

// checkNoDevices refuses block devices and character devices other than
// whiteouts (0:0).
func checkNoDevices(root *tree.Node) error {
	return root.Walk(func(path string, n *tree.Node) error {
		if n.LinkTo != nil {
			return nil
		}
		switch modeType(n.Mode) {
		case fs.ModeDevice:
			return refuse(ErrImageRefused, "%s is a block device; images with device nodes are not served to unprivileged callers", path)
		case fs.ModeDevice | fs.ModeCharDevice:
			if n.Rdev != 0 {
				return refuse(ErrImageRefused, "%s is a character device (%d:%d); only whiteouts (0:0) are served to unprivileged callers", path, major(n.Rdev), minor(n.Rdev))
			}
		}
		return nil
	})
}

// modeType returns the fs.FileMode type bits of a Unix mode's device types.
func modeType(mode uint32) fs.FileMode {
	switch mode & 0o170000 {
	case 0o060000:
		return fs.ModeDevice
	case 0o020000:
		return fs.ModeDevice | fs.ModeCharDevice
	}
	return 0
}

// major and minor split a Linux device number (glibc's encoding).
func major(dev uint64) uint64 { return dev>>8&0xfff | dev>>32&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | dev>>12&^0xff }

// checkCanonical writes root at the image's format version and compares
// the result with the image, byte for byte, without holding a second copy.
func checkCanonical(r io.ReaderAt, size int64, name string, root *tree.Node) error {
	version, err := image.ReadVersion(r)
	if err != nil {
		return refuse(ErrImageRefused, "%s: %v", name, err)
	}
	cw := &compareWriter{r: r, size: size}
	err = image.Write(cw, root, image.Options{MinVersion: version, MaxVersion: version})
	var d *difference
	switch {
	case errors.As(err, &d):
		return refuse(ErrImageRefused, "%s is not canonical: %s (gocfs's writer would write it differently; rewrite it with gocfs)", name, d)
	case err != nil:
		return refuse(ErrImageRefused, "%s: rewriting its tree: %v", name, err)
	case cw.off != size:
		return refuse(ErrImageRefused, "%s is not canonical: %d bytes long, its rewrite %d (trailing bytes the writer never produces)", name, size, cw.off)
	}
	return nil
}

// difference is where a rewrite first differs from the image.
type difference struct {
	off        int64
	want, have byte
	past       bool // the rewrite is longer than the image
}

func (d *difference) Error() string {
	if d.past {
		return fmt.Sprintf("its rewrite goes on past its end (offset %#x)", d.off)
	}
	return fmt.Sprintf("byte at offset %#x is %#02x, the rewrite has %#02x", d.off, d.have, d.want)
}

// compareWriter compares what is written with r from offset 0 on, and
// fails with a *difference at the first byte that differs.
type compareWriter struct {
	r    io.ReaderAt
	size int64
	off  int64
	buf  []byte
}

func (c *compareWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), 1<<16)
		if c.off+int64(n) > c.size {
			return written, &difference{off: c.size, past: true}
		}
		if cap(c.buf) < n {
			c.buf = make([]byte, 1<<16)
		}
		b := c.buf[:n]
		if _, err := c.r.ReadAt(b, c.off); err != nil {
			return written, fmt.Errorf("reading the image at %#x: %w", c.off, err)
		}
		if !bytes.Equal(b, p[:n]) {
			for i := range b {
				if b[i] != p[i] {
					return written, &difference{off: c.off + int64(i), want: p[i], have: b[i]}
				}
			}
		}
		c.off += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}
