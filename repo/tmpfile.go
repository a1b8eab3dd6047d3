package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// tmpFile is a file being written that has no name yet: an O_TMPFILE
// inode, which vanishes if the process dies, or, where the file system
// lacks O_TMPFILE, a named file under tmp/ (which gc removes if left).
type tmpFile struct {
	f     *os.File
	named string // the fallback's path, "" for O_TMPFILE
}

// newTmpFile creates an unnamed file on dir's file system, or a named one
// in fallbackDir.
func newTmpFile(dir, fallbackDir string) (*tmpFile, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return &tmpFile{f: os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)"))}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	if err := os.MkdirAll(fallbackDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(fallbackDir, "obj-"+randomName()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &tmpFile{f: f, named: f.Name()}, nil
}

// readOnly sets the file's mode and replaces the writable descriptor with a
// read-only one, as fs-verity needs (no writer may have the file open).
func (t *tmpFile) readOnly() error {
	if err := t.f.Chmod(0o644); err != nil {
		return err
	}
	var ro *os.File
	var err error
	if t.named != "" {
		ro, err = os.Open(t.named)
	} else {
		ro, err = os.OpenFile(procFD(t.f), os.O_RDONLY, 0)
	}
	if err != nil {
		return fmt.Errorf("reopening a temporary file read-only: %w", err)
	}
	t.f.Close()
	t.f = ro
	return nil
}

// link gives the file the name final (creating its directory if needed).
// An existing name is kept: the error then wraps fs.ErrExist.
func (t *tmpFile) link(final string) error {
	for attempt := 0; ; attempt++ {
		var err error
		switch {
		case t.named != "":
			err = unix.Link(t.named, final)
		case haveProc():
			err = unix.Linkat(unix.AT_FDCWD, procFD(t.f), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
		default:
			err = unix.Linkat(int(t.f.Fd()), "", unix.AT_FDCWD, final, unix.AT_EMPTY_PATH)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EEXIST):
			return fmt.Errorf("linking %s: %w", final, fs.ErrExist)
		case errors.Is(err, unix.ENOENT) && attempt == 0:
			if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("linking %s: %w", final, err)
	}
}

// discard closes the file and removes its temporary name, if any.
func (t *tmpFile) discard() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.named != "" {
		os.Remove(t.named)
		t.named = ""
	}
}

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

// lock takes the repository lock, as composefs-rs does: flock(2) on the
// repository directory, shared by everything that adds to the repository
// or reads it, exclusive for garbage collection. The returned function
// releases it.
//
// flock(2) lets new shared holders in while an exclusive one waits, so a
// steady stream of imports could hold garbage collection off forever. To
// give it its turn, the tmp/ directory serves as a second lock, taken
// first: garbage collection holds it exclusively, so that no new
// operation starts while it waits for those under way to end; the others
// hold it shared only until they have the repository lock. (cfsctl does
// not know this one; it only makes waiting fair, the repository lock
// alone keeps garbage collection apart from imports.)
func (r *Repo) lock(exclusive bool) (unlock func(), err error) {
	return r.Lock(exclusive)
}

// Lock takes the repository lock for a package that adds to the
// repository by itself (writing objects, then links that refer to them):
// shared, it keeps garbage collection out until unlock is called;
// exclusive, it waits until nothing else holds it. While holding it, the
// caller must not call Repo methods that lock (they would wait for an
// exclusive lock held, or hold off one waited for).
func (r *Repo) Lock(exclusive bool) (unlock func(), err error) {
	fd, err := unix.Open(r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("repo: locking %s: %w", r.dir, err)
	}
	turn := -1
	tmp := filepath.Join(r.dir, tmpDir)
	if !r.readOnly {
		os.Mkdir(tmp, 0o755)
	}
	if t, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		turn = t
	}
	release := func() {
		if turn >= 0 {
			unix.Close(turn)
		}
		unix.Close(fd)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if turn >= 0 {
		if err := r.flock(turn, how, exclusive); err != nil {
			release()
			return nil, err
		}
	}
	if err := r.flock(fd, how, exclusive); err != nil {
		release()
		return nil, err
	}
	if !exclusive && turn >= 0 {
		unix.Close(turn)
		turn = -1
	}
	return release, nil
}

// flock locks fd, saying so through Notice if it has to wait.
func (r *Repo) flock(fd, how int, exclusive bool) error {
	err := unix.Flock(fd, how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		if exclusive {
			r.notice("waiting for operations in progress on the repository to finish")
		} else {
			r.notice("waiting for garbage collection in the repository to finish")
		}
		for {
			err = unix.Flock(fd, how)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("repo: locking %s: %w", r.dir, err)
	}
	return nil
}
