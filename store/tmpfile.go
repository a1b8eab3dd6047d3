package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/internal/umask"
)

// tmpFile is an object being written that has no name yet: an O_TMPFILE
// inode in the store's directory, which vanishes if the process dies, or,
// where the file system lacks O_TMPFILE, a named file in the temporary
// directory (which a repository's garbage collection removes if left).
type tmpFile struct {
	f     *os.File
	dir   *beneath.Dir // the named file's directory, nil for O_TMPFILE
	named string       // the named file's name in dir
}

// newTmpFile creates a temporary file for an object.
func (s *Store) newTmpFile() (*tmpFile, error) {
	s.tmpFiles.Add(1)
	if !s.noTmpfile.Load() {
		fd, err := unix.Openat(s.dir.Fd(), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err == nil {
			return &tmpFile{f: os.NewFile(uintptr(fd), s.dir.Join("(unnamed)"))}, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("store: creating a temporary file in %s: %w", s.dir.Path(), err)
		}
		s.noTmpfile.Store(true)
	}
	dir, err := s.tmpDir()
	if err != nil {
		return nil, fmt.Errorf("store: temporary directory: %w", err)
	}
	name := "obj-" + randomName()
	f, err := dir.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &tmpFile{f: f, dir: dir, named: name}, nil
}

// finish makes the file an object: mode 0644 whatever the umask, and,
// with verity, read-only with fs-verity enabled (the kernel's
// measurement checked against want). Without fs-verity support in the
// file system it is an error only where the store requires it. sig, when
// not nil, is the object's builtin signature: one the kernel refuses is
// an error.
func (s *Store) finish(t *tmpFile, want []byte, verity bool, sig []byte) error {
	if !umaskKeeps0644() {
		if err := t.f.Chmod(0o644); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if !verity || s.noVerity.Load() && !s.opts.RequireVerity {
		return nil
	}
	if err := t.readOnly(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	err := fsverity.EnableSigned(t.f, s.alg, sig)
	switch {
	case sig != nil && (errors.Is(err, fsverity.ErrNotSupported) || errors.Is(err, unix.ENOKEY)):
		// No fs-verity, or no key in the .fs-verity keyring to check the
		// signature with (the caller checked it): enabled unsigned.
		err = fsverity.Enable(t.f, s.alg)
	case sig != nil && err != nil:
		return fmt.Errorf("store: the kernel refused the object's signature: %w", err)
	}
	if err != nil {
		if s.opts.RequireVerity {
			return fmt.Errorf("%w: %w", ErrNoVerity, err)
		}
		if errors.Is(err, fsverity.ErrNotSupported) {
			s.noVerity.Store(true)
		}
		return nil
	}
	alg, got, err := fsverity.Measure(t.f)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if alg != s.alg || string(got) != string(want) {
		return fmt.Errorf("%w: the kernel measured %s:%s, the content written has %s", ErrCorrupt, alg, fsverity.Hex(got), fsverity.Hex(want))
	}
	return nil
}

// readOnly replaces the writable descriptor with a read-only one, as
// fs-verity needs (no writer may have the file open).
func (t *tmpFile) readOnly() error {
	var ro *os.File
	var err error
	switch {
	case t.dir != nil:
		ro, err = t.dir.Open(t.named, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	case haveProc():
		ro, err = os.OpenFile(procFD(t.f), os.O_RDONLY, 0)
	default:
		return nil // fs-verity will refuse; it is best effort
	}
	if err != nil {
		return fmt.Errorf("reopening a temporary file read-only: %w", err)
	}
	t.f.Close()
	t.f = ro
	return nil
}

// link gives the file the name rest in the fan-out directory dir. An
// existing name is kept: the error then wraps fs.ErrExist.
func (t *tmpFile) link(dir *beneath.Dir, rest string) error {
	var err error
	switch {
	case t.dir != nil:
		err = unix.Linkat(t.dir.Fd(), t.named, dir.Fd(), rest, 0)
	case !noEmptyPathLink.Load() || !haveProc():
		// Needs CAP_DAC_READ_SEARCH on older kernels (ENOENT without
		// it), but costs no path walk through /proc.
		err = unix.Linkat(int(t.f.Fd()), "", dir.Fd(), rest, unix.AT_EMPTY_PATH)
		if err != unix.ENOENT || !haveProc() {
			break
		}
		noEmptyPathLink.Store(true)
		fallthrough
	default:
		err = unix.Linkat(unix.AT_FDCWD, procFD(t.f), dir.Fd(), rest, unix.AT_SYMLINK_FOLLOW)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("linking %s: %w", dir.Join(rest), fs.ErrExist)
	}
	return &os.LinkError{Op: "link", Old: t.f.Name(), New: dir.Join(rest), Err: err}
}

// discard closes the file and removes its temporary name, if any.
func (t *tmpFile) discard() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.dir != nil && t.named != "" {
		t.dir.Remove(t.named)
		t.named = ""
	}
}

// umaskKeeps0644 tells whether the process's umask leaves mode 0644 as it
// is (022, 002, 0 …), read once: then a file created 0644 needs no chmod,
// a system call per object saved. (A variable for the tests.)
var umaskKeeps0644 = sync.OnceValue(func() bool { return umask.Get()&0o644 == 0 })

// noEmptyPathLink: linkat(AT_EMPTY_PATH) failed (no CAP_DAC_READ_SEARCH),
// temporary files are linked through /proc/self/fd instead.
var noEmptyPathLink atomic.Bool

func procFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

var haveProc = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
