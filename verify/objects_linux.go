//go:build linux

package verify

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// objectStore is Options.Basedir, held open.
type objectStore struct {
	dir string
	fd  int
}

func openStore(dir string) (*objectStore, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR {
		return nil, notDir(dir)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &objectStore{dir: dir, fd: fd}, nil
}

func (s *objectStore) close() { unix.Close(s.fd) }

// openat2 is unix.Openat2, replaced in tests by one that fails with ENOSYS
// as kernels before 5.6 do.
var openat2 = unix.Openat2

// objectFlags open an object for reading; non-blocking, so that a FIFO in
// its place cannot hang the check (cleared once it is known to be a
// regular file).
const objectFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// open opens the object at rel ("XX/REST") beneath the store, following
// no symbolic link: openat2 with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS,
// or, where openat2 is missing, one component at a time with O_NOFOLLOW.
// A symbolic link on the way, or in the object's place, is an error
// wrapping errSymlink.
func (s *objectStore) open(rel string) (*os.File, error) {
	fd, err := openat2(s.fd, rel, &unix.OpenHow{
		Flags:   objectFlags,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == unix.ENOSYS {
		fd, err = s.openNoFollow(rel)
	}
	if err == unix.ELOOP {
		err = errSymlink
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
	}
	return os.NewFile(uintptr(fd), s.dir+"/"+rel), nil
}

// openNoFollow opens rel one component at a time, refusing symbolic
// links: O_NOFOLLOW makes the last component's open fail with ELOOP, and a
// directory component that is a symlink fails O_DIRECTORY (then
// fstatat tells the two apart).
func (s *objectStore) openNoFollow(rel string) (int, error) {
	comps := strings.Split(rel, "/")
	cur := s.fd
	defer func() {
		if cur != s.fd {
			unix.Close(cur)
		}
	}()
	for i, c := range comps {
		if i == len(comps)-1 {
			return unix.Openat(cur, c, objectFlags|unix.O_NOFOLLOW, 0)
		}
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR {
			var st unix.Stat_t
			if unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		if err != nil {
			return -1, err
		}
		if cur != s.fd {
			unix.Close(cur)
		}
		cur = fd
	}
	return -1, unix.ENOENT
}
