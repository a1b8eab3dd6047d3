//go:build linux

package mount

import (
	"fmt"
	"os"

	"github.com/gocfs/gocfs/fsverity"
	"golang.org/x/sys/unix"
)

// prepareImage checks the image open as f (called name in errors) as o
// asks, and returns what to mount: f itself, or a private copy of it sealed
// against every change, which the caller closes. With an expected digest
// (decoded: digest) the image must have it ([VerifiedImage]). Unless
// o.NoVerify is set the image passes the structural check ([CheckImage]),
// and what is checked is what gets mounted: the image is mounted in place
// only when nobody but root can change its bytes afterwards
// ([stableFile]); otherwise the sealed copy is checked and mounted.
func prepareImage(f *os.File, name string, digest []byte, o *Options) (_ *os.File, retErr error) {
	src := f
	var size int64
	switch {
	case digest != nil:
		s, n, err := VerifiedImage(f, name, digest)
		if err != nil {
			return nil, err
		}
		src, size = s, n
	case o.NoVerify || stableFile(f):
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("composefs image %s: %w", name, err)
		}
		size = st.Size()
	default:
		s, n, err := sealedCopy(f, name)
		if err != nil {
			return nil, err
		}
		src, size = s, n
	}
	defer func() {
		if retErr != nil && src != f {
			src.Close()
		}
	}()
	if !o.NoVerify {
		if err := CheckImage(src, size, name); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// stableFile tells whether nobody but root can change the bytes of f from
// now on: f has fs-verity enabled, or is a memfd sealed against writes, or it belongs to root, is writable by
// nobody else, and lives on a local file system whose content the kernel
// owns (not FUSE, whose server says what a file holds, nor a network file
// system, nor an overlay that could have either beneath).
func stableFile(f *os.File) bool {
	if _, _, err := fsverity.Measure(f); err == nil {
		return true
	}
	const sealed = unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&sealed == sealed {
		return true // a sealed memfd, as sealedCopy makes
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Uid != 0 || st.Mode&0o022 != 0 {
		return false
	}
	var sfs unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &sfs) != nil {
		return false
	}
	switch sfs.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.BCACHEFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.RAMFS_MAGIC, unix.EROFS_SUPER_MAGIC_V1, unix.SQUASHFS_MAGIC:
		return true
	}
	return false
}
