package oci

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo"
)

// objectStore is what importing needs from the repository to store content
// as objects. The repo package has such a writer (unexported for now);
// repoObjects implements this interface on a repository's directory with
// the same rules, until repo exports one.
type objectStore interface {
	// Algorithm is the fs-verity algorithm that names objects.
	Algorithm() fsverity.Algorithm
	// Put stores data as an object (unless present) and returns its
	// digest.
	Put(data []byte) ([]byte, error)
	// Create starts an object written piece by piece.
	Create() (objectFile, error)
	// Has reports whether the object is present.
	Has(digest []byte) bool
	// Flush publishes every object committed so far: their content made
	// durable, then their names created. Names become durable with the
	// next Flush or Sync.
	Flush() error
	// Sync makes everything published so far durable.
	Sync() error
	// Abort drops the objects committed but not yet published.
	Abort()
}

// objectFile is one object being written.
type objectFile interface {
	io.Writer
	// Commit ends the object and queues it for publication; it returns
	// the object's digest.
	Commit() ([]byte, error)
	// Abort drops the object.
	Abort()
}

// maxPending bounds the objects committed but not published, each holding
// a file descriptor.
const maxPending = 256

// repoObjects stores objects in a repository's objects/ directory: each is
// written to an unnamed file (O_TMPFILE) while its fs-verity digest is
// computed, given fs-verity where the file system has it, and linked under
// its name once a batch's content is durable (syncfs), exactly as the repo
// package does, so that a crash never leaves a partial object under a name.
type repoObjects struct {
	r      *repo.Repo
	alg    fsverity.Algorithm
	dir    string // objects/
	tmpDir string // fallback for file systems without O_TMPFILE

	flushMu sync.Mutex // serializes publications
	mu      sync.Mutex
	pending []*tmpObject
	verity  int // 0 unknown, 1 works, -1 not supported here
	err     error
	hashers sync.Pool // of *fsverity.Hasher, for Put

	// Counters, under mu.
	newObjects int
	written    int64
}

func newRepoObjects(r *repo.Repo) *repoObjects {
	return &repoObjects{
		r: r, alg: r.Algorithm(), dir: r.ObjectsDir(),
		tmpDir: filepath.Join(r.Dir(), "tmp"),
	}
}

func (s *repoObjects) Algorithm() fsverity.Algorithm { return s.alg }

func (s *repoObjects) path(digest []byte) string {
	return filepath.Join(s.dir, repo.ObjectRel(digest))
}

func (s *repoObjects) Has(digest []byte) bool {
	_, err := os.Lstat(s.path(digest))
	return err == nil
}

// tmpObject is an object being written to an unnamed file.
type tmpObject struct {
	s      *repoObjects
	f      *os.File
	named  string // the fallback's name, "" for O_TMPFILE
	h      *fsverity.Hasher
	n      int64
	final  string
	digest []byte
}

func (s *repoObjects) Create() (objectFile, error) {
	t, err := s.newTmp()
	if err != nil {
		return nil, err
	}
	t.h = fsverity.New(s.alg)
	return t, nil
}

func (s *repoObjects) newTmp() (*tmpObject, error) {
	fd, err := unix.Open(s.dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return &tmpObject{s: s, f: os.NewFile(uintptr(fd), filepath.Join(s.dir, "(unnamed)"))}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("oci: creating an object in %s: %w", s.dir, err)
	}
	if err := os.MkdirAll(s.tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	var b [8]byte
	rand.Read(b[:])
	f, err := os.OpenFile(filepath.Join(s.tmpDir, "obj-"+hex.EncodeToString(b[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	return &tmpObject{s: s, f: f, named: f.Name()}, nil
}

func (t *tmpObject) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.h.Write(p[:n])
	t.n += int64(n)
	if err != nil {
		err = fmt.Errorf("oci: writing an object: %w", err)
	}
	return n, err
}

func (t *tmpObject) Abort() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.named != "" {
		os.Remove(t.named)
		t.named = ""
	}
}

func (t *tmpObject) Commit() ([]byte, error) {
	return t.s.commit(t, t.h.Sum(nil))
}

// commit queues t, whose content has the given digest, for publication
// (or drops it if the object is there already).
func (s *repoObjects) commit(t *tmpObject, digest []byte) ([]byte, error) {
	t.digest = digest
	t.final = s.path(digest)
	if _, err := os.Lstat(t.final); err == nil {
		t.Abort()
		return digest, nil
	}
	if err := s.enableVerity(t); err != nil {
		t.Abort()
		return nil, err
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		t.Abort()
		return nil, s.err
	}
	s.pending = append(s.pending, t)
	s.newObjects++
	s.written += t.n
	full := len(s.pending) >= maxPending
	s.mu.Unlock()
	if full {
		if err := s.Flush(); err != nil {
			return nil, err
		}
	}
	return digest, nil
}

// enableVerity gives a new object fs-verity where the file system supports
// it (found out on the first object), and checks the kernel's digest. A
// repository marked secure requires it.
func (s *repoObjects) enableVerity(t *tmpObject) error {
	s.mu.Lock()
	state := s.verity
	s.mu.Unlock()
	if state < 0 && !s.r.Secure() {
		return nil
	}
	// fs-verity needs a file nobody has open for writing.
	var ro *os.File
	var err error
	if t.named != "" {
		ro, err = os.Open(t.named)
	} else {
		ro, err = os.OpenFile(procFD(t.f), os.O_RDONLY, 0)
	}
	if err != nil {
		return fmt.Errorf("oci: reopening an object read-only: %w", err)
	}
	t.f.Close()
	t.f = ro
	if err := fsverity.Enable(ro, s.alg); err != nil {
		if s.r.Secure() {
			return fmt.Errorf("oci: the repository requires fs-verity on every object: %w", err)
		}
		if errors.Is(err, fsverity.ErrNotSupported) {
			s.mu.Lock()
			s.verity = -1
			s.mu.Unlock()
		}
		return nil
	}
	alg, got, err := fsverity.Measure(ro)
	if err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	if alg != s.alg || !bytes.Equal(got, t.digest) {
		return fmt.Errorf("oci: the kernel measured %s:%s for an object whose content has digest %s", alg, fsverity.Hex(got), fsverity.Hex(t.digest))
	}
	s.mu.Lock()
	s.verity = 1
	s.mu.Unlock()
	return nil
}

func (s *repoObjects) Put(data []byte) ([]byte, error) {
	h, _ := s.hashers.Get().(*fsverity.Hasher)
	if h == nil {
		h = fsverity.New(s.alg)
	}
	h.Reset()
	h.Write(data)
	digest := h.Sum(nil)
	s.hashers.Put(h)
	if s.Has(digest) {
		return digest, nil
	}
	t, err := s.newTmp()
	if err != nil {
		return nil, err
	}
	if _, err := t.f.Write(data); err != nil {
		t.Abort()
		return nil, fmt.Errorf("oci: writing an object: %w", err)
	}
	t.n = int64(len(data))
	return s.commit(t, digest)
}

func (s *repoObjects) Flush() error {
	// One publication at a time: when Flush returns, every object
	// committed before it was called has its name, whoever published it.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	pending, err := s.pending, s.err
	s.pending = nil
	s.mu.Unlock()
	defer func() {
		for _, t := range pending {
			t.Abort()
		}
	}()
	if err != nil || len(pending) == 0 {
		return err
	}
	// Content first, then names.
	if err := syncfs(s.dir); err != nil {
		return s.fail(err)
	}
	for _, t := range pending {
		if err := t.link(); err != nil && !errors.Is(err, fs.ErrExist) {
			return s.fail(fmt.Errorf("oci: publishing object %s: %w", fsverity.Hex(t.digest), err))
		}
	}
	return nil
}

// fail records the first publication failure: later ones are refused.
func (s *repoObjects) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	return s.err
}

func (s *repoObjects) Sync() error {
	if err := s.Flush(); err != nil {
		return err
	}
	return syncfs(s.dir)
}

func (s *repoObjects) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.pending {
		t.Abort()
	}
	s.pending = nil
}

// link gives the object its name (creating its fan-out directory if
// needed). An existing name is kept: the error then wraps fs.ErrExist.
func (t *tmpObject) link() error {
	for attempt := 0; ; attempt++ {
		var err error
		if t.named != "" {
			err = unix.Link(t.named, t.final)
		} else {
			err = unix.Linkat(unix.AT_FDCWD, procFD(t.f), unix.AT_FDCWD, t.final, unix.AT_SYMLINK_FOLLOW)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EEXIST):
			return fs.ErrExist
		case errors.Is(err, unix.ENOENT) && attempt == 0:
			if err := os.MkdirAll(filepath.Dir(t.final), 0o755); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

func procFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// syncfs makes everything written to dir's file system durable.
func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("oci: syncing %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("oci: syncing %s: %w", dir, err)
	}
	return nil
}
