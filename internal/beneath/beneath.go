// Package beneath opens, lists, creates and removes files relative to a
// directory descriptor without ever leaving that directory or following a
// symbolic link: what an object store and a repository need so that a
// symlink put where a directory should be (tmp/ -> /home, objects/ab ->
// /etc) is reported instead of followed, and nothing outside is written or
// removed.
//
// Paths are resolved with openat2(2) and RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; on kernels without openat2
// (before 5.6) one component at a time with O_NOFOLLOW, which refuses the
// same things. Only the top directory, opened with OpenDir, is reached by
// an ordinary path lookup: it is the caller's choice.
package beneath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrSymlink is wrapped by the errors for a path that goes through a
// symbolic link (or ends in one where a file or directory is opened).
var ErrSymlink = errors.New("symbolic link in the path")

var noOpenat2 atomic.Bool

// WithoutOpenat2 makes Open resolve paths one component at a time, as it
// does on kernels without openat2 (before 5.6), until the returned
// function restores the previous setting. It is for tests of that path.
func WithoutOpenat2() (restore func()) {
	old := noOpenat2.Swap(true)
	return func() { noOpenat2.Store(old) }
}

// Open opens path relative to dirfd, beneath it and through no symbolic
// link, with flags (O_CLOEXEC is added). path must be relative and
// "clean" (no "." or ".." components, no empty ones).
func Open(dirfd int, path string, flags int, mode uint32) (int, error) {
	if !ValidPath(path) {
		return -1, fmt.Errorf("%q: not a relative path beneath the directory: %w", path, unix.EXDEV)
	}
	flags |= unix.O_CLOEXEC
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(dirfd, path, &unix.OpenHow{
			Flags:   uint64(flags),
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.ENOSYS {
			return fd, symlinkErr(err)
		}
		noOpenat2.Store(true)
	}
	comps := strings.Split(path, "/")
	cur := dirfd
	for i, c := range comps {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(comps)-1 {
			f = flags | unix.O_NOFOLLOW
		}
		fd, err := unix.Openat(cur, c, f, mode)
		if err == unix.ENOTDIR && isSymlink(cur, c) { // O_NOFOLLOW|O_DIRECTORY on a symlink
			err = unix.ELOOP
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, symlinkErr(err)
		}
		cur = fd
	}
	return cur, nil
}

// isSymlink reports whether name in dirfd is a symbolic link.
func isSymlink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// symlinkErr says what ELOOP means here; other errors are returned as
// they are (so that callers can compare errnos).
func symlinkErr(err error) error {
	if err == unix.ELOOP {
		return fmt.Errorf("%w (%w)", ErrSymlink, err)
	}
	return err
}

// ValidPath reports whether p is relative, with no empty, "." or ".."
// component: what Open takes.
func ValidPath(p string) bool {
	if p == "" || p[0] == '/' {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// Dir is an open directory.
type Dir struct {
	f    *os.File
	path string // for messages
}

// OpenDir opens the directory at path (an ordinary lookup: symbolic links
// in path are followed; it is the top that everything else is beneath).
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return newDir(fd, path), nil
}

// OpenSearchable opens the directory at path as OpenDir does, but with
// O_PATH: enough to open what is beneath it where the directory is
// searchable and not readable, not enough to list or sync it.
func OpenSearchable(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return newDir(fd, path), nil
}

func newDir(fd int, path string) *Dir { return &Dir{f: os.NewFile(uintptr(fd), path), path: path} }

// FromFile returns a Dir on a duplicate of f's descriptor, which must be a
// directory. name is its path, for messages.
func FromFile(f *os.File, name string) (*Dir, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: name, Err: unix.ENOTDIR}
	}
	return newDir(fd, name), nil
}

// Fd returns the directory's descriptor (owned by d).
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// File returns a new *os.File on a duplicate of d's descriptor.
func (d *Dir) File() (*os.File, error) {
	fd, err := unix.FcntlInt(d.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: d.path, Err: err}
	}
	return os.NewFile(uintptr(fd), d.path), nil
}

// Path returns the directory's path, for messages.
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in d, for messages.
func (d *Dir) Join(name string) string { return d.path + "/" + name }

// Close closes the directory.
func (d *Dir) Close() error {
	if d == nil {
		return nil
	}
	return d.f.Close()
}

// Dir opens the directory rel beneath d. With create, missing directories
// on the way are made (mode 0755). A symbolic link anywhere on the way is
// an error wrapping ErrSymlink; a file that is not a directory, one
// wrapping unix.ENOTDIR.
func (d *Dir) Dir(rel string, create bool) (*Dir, error) {
	fd, err := Open(d.Fd(), rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err = d.mkdirAll(rel); err == nil {
			fd, err = Open(d.Fd(), rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.Join(rel), Err: err}
	}
	return newDir(fd, d.Join(rel)), nil
}

// mkdirAll makes the directories of rel that are missing, each one
// beneath the last.
func (d *Dir) mkdirAll(rel string) error {
	comps := strings.Split(rel, "/")
	for i := range comps {
		parent, name := d.Fd(), comps[i]
		if i > 0 {
			fd, err := Open(d.Fd(), strings.Join(comps[:i], "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			parent = fd
		}
		if err := unix.Mkdirat(parent, name, 0o755); err != nil && err != unix.EEXIST {
			return err
		}
	}
	return nil
}

// Open opens the file rel beneath d.
func (d *Dir) Open(rel string, flags int, mode uint32) (*os.File, error) {
	fd, err := Open(d.Fd(), rel, flags, mode)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.Join(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), d.Join(rel)), nil
}

// Lstat returns the status of the entry name of d, not following it if it
// is a symbolic link.
func (d *Dir) Lstat(name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.Fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: d.Join(name), Err: err}
	}
	return &st, nil
}

// Entry is a directory entry.
type Entry struct {
	Name string
	Type fs.FileMode // fs.ModeDir, fs.ModeSymlink, 0 for regular files, ...
}

// ReadDir lists d's entries (without "." and ".."), in directory order.
func (d *Dir) ReadDir() ([]Entry, error) {
	fd, err := unix.Openat(d.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(ents))
	for i, e := range ents {
		out[i] = Entry{Name: e.Name(), Type: e.Type()}
	}
	return out, nil
}

// Remove removes the entry name of d if it is not a directory (a symbolic
// link is removed, not followed).
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(d.Fd(), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveAll removes the entry name of d and, if it is a directory,
// everything under it; symbolic links are removed, never followed. A
// missing entry is no error.
func (d *Dir) RemoveAll(name string) error {
	err := unix.Unlinkat(d.Fd(), name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return &os.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	sub, err := d.Dir(name, false)
	if err != nil {
		return err
	}
	ents, err := sub.ReadDir()
	if err == nil {
		for _, e := range ents {
			if err = sub.RemoveAll(e.Name); err != nil {
				break
			}
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(d.Fd(), name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// Readlink returns the target of the symbolic link name in d.
func (d *Dir) Readlink(name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(d.Fd(), name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: d.Join(name), Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Symlink creates the symbolic link name in d, pointing at target.
func (d *Dir) Symlink(target, name string) error {
	if err := unix.Symlinkat(target, d.Fd(), name); err != nil {
		return &os.PathError{Op: "symlink", Path: d.Join(name), Err: err}
	}
	return nil
}

// Rename renames the entry name of d to newName in the directory to.
func (d *Dir) Rename(name string, to *Dir, newName string) error {
	if err := unix.Renameat(d.Fd(), name, to.Fd(), newName); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(name), New: to.Join(newName), Err: err}
	}
	return nil
}

// Sync makes d's entries durable (fsync of the directory).
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.Fd()); err != nil {
		return &os.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// Syncfs makes everything written to d's file system durable.
func (d *Dir) Syncfs() error {
	if err := unix.Syncfs(d.Fd()); err != nil {
		return &os.PathError{Op: "syncfs", Path: d.path, Err: err}
	}
	return nil
}
