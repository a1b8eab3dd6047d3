//go:build linux

package verify

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/internal/beneath"
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

// objectFlags open an object for reading; non-blocking, so that a FIFO in
// its place cannot hang the check (cleared once it is known to be a
// regular file).
const objectFlags = unix.O_RDONLY | unix.O_NOCTTY | unix.O_NONBLOCK

// open opens the object at rel ("XX/REST") beneath the store, following
// no symbolic link (package beneath). A symbolic link on the way, or in
// the object's place, is an error wrapping errSymlink.
func (s *objectStore) open(rel string) (*os.File, error) {
	fd, err := beneath.Open(s.fd, rel, objectFlags, 0)
	if errors.Is(err, beneath.ErrSymlink) {
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
