package scan

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// statxBasic is the part of statx's answer the scan needs.
const statxBasic = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_UID |
	unix.STATX_GID | unix.STATX_MTIME | unix.STATX_CTIME | unix.STATX_INO | unix.STATX_SIZE

// statAt is lstat(2) of name in dirfd, made with statx(2), which also
// tells whether the file may have fs-verity enabled: false only when the
// file system reports that it has not, so that a file without it is not
// asked for a measurement (an ioctl per file). When statx isn't available
// or leaves a field out, it falls back to fstatat.
func statAt(dirfd int, name string, st *unix.Stat_t) (verity bool, err error) {
	var x unix.Statx_t
	for {
		err = unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT, statxBasic, &x)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ENOSYS || err == nil && x.Mask&statxBasic != statxBasic {
		return true, fstatatRetry(dirfd, name, st)
	}
	if err != nil {
		return false, err
	}
	*st = unix.Stat_t{
		Dev:  unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:  x.Ino,
		Mode: uint32(x.Mode),
		Uid:  x.Uid,
		Gid:  x.Gid,
		Rdev: unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size: int64(x.Size),
		Mtim: unix.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)},
		Ctim: unix.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)},
	}
	setUint(&st.Nlink, x.Nlink) // uint64 on amd64, uint32 on arm64
	return mayHaveVerity(x.Attributes, x.Attributes_mask), nil
}

// setUint sets a stat field whose width differs between architectures.
func setUint[T ~uint32 | ~uint64](dst *T, v uint32) { *dst = T(v) }

// mayHaveVerity reads statx's attributes: false when the file system says
// the file has no fs-verity. Tests replace it.
var mayHaveVerity = func(attrs, mask uint64) bool {
	return mask&unix.STATX_ATTR_VERITY == 0 || attrs&unix.STATX_ATTR_VERITY != 0
}

func fstatatRetry(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// openRetry is open(2), retried on EINTR.
func openRetry(path string, flags int) (int, error) {
	return openatRetry(unix.AT_FDCWD, path, flags)
}

// openatRetry is openat(2), retried on EINTR.
func openatRetry(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readDirNames returns the names in the open directory fd, without "."
// and "..", in the order the file system gives them. The names share one
// string (one allocation per directory, not one per name).
func readDirNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var raw []byte
	var ends []int
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		raw, ends = appendDirents(buf[:n], raw, ends)
	}
	all := string(raw)
	names := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		names[i] = all[start:end]
		start = end
	}
	return names, nil
}

// appendDirents appends the names of the linux_dirent64 records in buf
// (but "." and "..") to raw, and where each ends to ends.
func appendDirents(buf, raw []byte, ends []int) ([]byte, []int) {
	// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen;
	// u8 d_type; char d_name[]; }, the name NUL-terminated.
	const nameOff = 19
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		name := buf[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		buf = buf[reclen:]
		if string(name) == "." || string(name) == ".." || len(name) == 0 {
			continue
		}
		raw = append(raw, name...)
		ends = append(ends, len(raw))
	}
	return raw, ends
}
