package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
)

// Errors returned by this package (wrapped, with the object or file).
var (
	// ErrCorrupt reports content whose digest is not the one that names
	// it, or not the one expected.
	ErrCorrupt = errors.New("store: content does not have its digest")
	// ErrChanged reports a source file that changed while it was being
	// stored (its size, or its content: the digest of what was read is
	// not the one expected).
	ErrChanged = errors.New("store: file changed while being stored")
	// ErrNoVerity reports an object without fs-verity in a store that
	// requires it (Options.RequireVerity).
	ErrNoVerity = errors.New("store: no fs-verity, which the store requires")
	// ErrReadOnly reports a write to a store opened read-only.
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrUnexpected reports something in the store that is not an object
	// where an object should be: a symbolic link, a directory, a device.
	ErrUnexpected = errors.New("store: not an object")
)

// Options control opening a store.
type Options struct {
	// Algorithm is the fs-verity digest algorithm objects are named by;
	// 0 means SHA-256.
	Algorithm fsverity.Algorithm
	// Create makes the store directory if it does not exist (Open only).
	Create bool
	// ReadOnly opens the store for reading only (with O_PATH: the
	// directory need only be searchable).
	ReadOnly bool
	// EmptyIfMissing makes Open of a missing directory with ReadOnly
	// give an empty store (a repository whose objects/ was never made).
	EmptyIfMissing bool
	// NoVerity does not try to enable fs-verity on new objects.
	NoVerity bool
	// RequireVerity makes an object that fs-verity can't be enabled on
	// an error, and Check report objects without it (ErrNoVerity).
	RequireVerity bool
	// TmpDir, when not nil, opens the directory for named temporary
	// files (a repository's tmp/), called once where the file system has
	// no O_TMPFILE; it must be on the store's file system. nil means
	// ".tmp" in the store directory. The store keeps its own duplicate of
	// the descriptor, and closes the file.
	TmpDir func() (*os.File, error)
	// Batch is the number of objects written but not yet named that a
	// Writer holds (each holds a descriptor) before it publishes them
	// (each publication costs a syncfs); 0 means a quarter of the
	// process's limit on open files, between 256 and 4096.
	Batch int
	// Threads bounds parallel work (Import, hashing large files); <= 0
	// means the number of CPUs.
	Threads int
	// Notice, when not nil, receives messages worth telling a user (a
	// file that changed while it was stored, and is read again).
	Notice func(msg string)
}

// Store is an object store rooted at a directory. Its methods may be
// called from several goroutines at once.
type Store struct {
	dir  *beneath.Dir // nil: an empty store (Options.EmptyIfMissing)
	path string
	alg  fsverity.Algorithm
	opts Options

	fanMu sync.Mutex
	fan   map[string]*beneath.Dir // fan-out directories opened for writing

	tmpOnce sync.Once
	tmp     *beneath.Dir // Options.TmpDir, or .tmp (opened when needed)
	tmpErr  error
	ownTmp  bool // tmp is .tmp in the store

	bufs sync.Pool // of *[]byte, copy buffers

	// What the file system turned out not to support: not tried again.
	noTmpfile, noVerity, noClone, noCopyRange atomic.Bool

	tmpFiles atomic.Int64 // temporary files created, for tests
}

// Open opens the store at dir (symbolic links in dir itself are
// followed; nothing beneath it is).
func Open(dir string, opts Options) (*Store, error) {
	if opts.Create && !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", dir, err)
		}
	}
	var d *beneath.Dir
	var err error
	if opts.ReadOnly {
		d, err = beneath.OpenSearchable(dir)
		if errors.Is(err, fs.ErrNotExist) && opts.EmptyIfMissing {
			return &Store{path: dir, alg: opts.Algorithm, opts: opts}, checkOptions(&opts)
		}
	} else {
		d, err = beneath.OpenDir(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return newStore(d, opts)
}

// OpenDir opens the store in the directory f, opened by the caller (a
// repository opens its objects/ beneath itself, refusing a symbolic
// link). The store uses a duplicate of f's descriptor.
func OpenDir(f *os.File, opts Options) (*Store, error) {
	d, err := beneath.FromFile(f, f.Name())
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return newStore(d, opts)
}

func newStore(d *beneath.Dir, opts Options) (*Store, error) {
	if err := checkOptions(&opts); err != nil {
		d.Close()
		return nil, err
	}
	return &Store{dir: d, path: d.Path(), alg: opts.Algorithm, opts: opts, fan: make(map[string]*beneath.Dir), ownTmp: opts.TmpDir == nil}, nil
}

// checkOptions checks opts and fills in the defaults.
func checkOptions(opts *Options) error {
	if opts.Algorithm == 0 {
		opts.Algorithm = fsverity.SHA256
	}
	if !opts.Algorithm.Valid() {
		return fmt.Errorf("store: unknown algorithm %v", opts.Algorithm)
	}
	if opts.Batch <= 0 {
		opts.Batch = defaultBatch()
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	return nil
}

// defaultBatch is a quarter of the limit on open files, between 256 and
// 4096.
func defaultBatch() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 256
	}
	return int(min(max(rl.Cur/4, 256), 4096))
}

// Close releases the store's descriptors. Writers must be done.
func (s *Store) Close() error {
	s.fanMu.Lock()
	for k, d := range s.fan {
		d.Close()
		delete(s.fan, k)
	}
	s.fanMu.Unlock()
	if s.tmp != nil {
		s.tmp.Close()
	}
	if s.dir == nil {
		return nil
	}
	return s.dir.Close()
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.path }

// Algorithm returns the algorithm objects are named by.
func (s *Store) Algorithm() fsverity.Algorithm { return s.alg }

// Path returns the path of d's object (which may not exist).
func (s *Store) Path(d digest.Digest) string { return s.path + "/" + d.ObjectPath() }

func (s *Store) notice(format string, a ...any) {
	if s.opts.Notice != nil {
		s.opts.Notice(fmt.Sprintf(format, a...))
	}
}

func (s *Store) checkAlg(d digest.Digest) error {
	if d.Algorithm() != s.alg {
		return fmt.Errorf("%w: %q is not a %s digest, which this store's objects are named by", digest.ErrInvalid, d.Hex(), s.alg)
	}
	return nil
}

// OpenObject opens d's object for reading. The object must be a regular
// file reached through no symbolic link; otherwise the error wraps
// ErrUnexpected (or digest.ErrInvalid for a digest of another algorithm).
// A missing object's error wraps fs.ErrNotExist.
func (s *Store) OpenObject(d digest.Digest) (*os.File, error) {
	if err := s.checkAlg(d); err != nil {
		return nil, err
	}
	return s.OpenPath(d.ObjectPath())
}

// OpenPath opens the regular file at rel, a relative path beneath the
// store (an image's redirect), for reading: through no symbolic link, no
// ".." and no magic link, and only if it is a regular file (else the
// error wraps ErrUnexpected). It is opened non-blocking, so that a FIFO
// can't hang the caller, and then made blocking.
func (s *Store) OpenPath(rel string) (*os.File, error) {
	where := s.path + "/" + rel
	if s.dir == nil {
		return nil, &os.PathError{Op: "open", Path: where, Err: unix.ENOENT}
	}
	fd, err := beneath.Open(s.dir.Fd(), rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, beneath.ErrSymlink) {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnexpected, where, err)
		}
		return nil, &os.PathError{Op: "open", Path: where, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: where, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnexpected, where)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: where, Err: err}
	}
	return os.NewFile(uintptr(fd), where), nil
}

// Has reports whether the store has d's object. Where the kernel has
// measured it (fs-verity enabled), its digest is checked: a mismatch is
// an error wrapping ErrCorrupt. Something other than a regular file under
// the object's name is an error wrapping ErrUnexpected.
//
// The name is looked up with statx in its fan-out directory (opened
// beneath the store): the object is opened and measured only when the
// file system can't say that it has no fs-verity.
func (s *Store) Has(d digest.Digest) (bool, error) {
	if err := s.checkAlg(d); err != nil {
		return false, err
	}
	rel := d.ObjectPath()
	dir, err := s.lookupFanout(rel[:2])
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var x unix.Statx_t
	for {
		err = unix.Statx(dir.Fd(), rel[3:], unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE, &x)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.ENOENT:
		return false, nil
	case err != nil:
		return false, &os.PathError{Op: "stat", Path: s.Path(d), Err: err}
	case x.Mode&unix.S_IFMT != unix.S_IFREG:
		return false, fmt.Errorf("%w: %s is not a regular file", ErrUnexpected, s.Path(d))
	case x.Attributes_mask&unix.STATX_ATTR_VERITY != 0 && x.Attributes&unix.STATX_ATTR_VERITY == 0:
		return true, nil // nothing the kernel could check
	}
	return s.hasMeasured(d)
}

// hasMeasured is Has for an object that may have fs-verity enabled: it is
// opened and measured.
func (s *Store) hasMeasured(d digest.Digest) (bool, error) {
	f, err := s.OpenObject(d)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if alg, got, err := fsverity.Measure(f); err == nil && !d.Equal(alg, got) {
		return true, fmt.Errorf("%w: %s has fs-verity digest %s:%s", ErrCorrupt, f.Name(), alg, fsverity.Hex(got))
	}
	return true, nil
}

// Sync makes everything written to the store's file system durable
// (syncfs).
func (s *Store) Sync() error {
	if s.dir == nil {
		return nil
	}
	if err := s.dir.Syncfs(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// fanout returns the directory XX of the store, opened beneath it (and
// made if missing), for linking objects into.
func (s *Store) fanout(xx string) (*beneath.Dir, error) {
	return s.openFanout(xx, true)
}

// lookupFanout returns the directory XX of the store, opened beneath it;
// a missing one is an error wrapping fs.ErrNotExist, a symbolic link one
// wrapping ErrUnexpected.
func (s *Store) lookupFanout(xx string) (*beneath.Dir, error) {
	d, err := s.openFanout(xx, false)
	if errors.Is(err, beneath.ErrSymlink) {
		return nil, fmt.Errorf("%w: %w", ErrUnexpected, err)
	}
	return d, err
}

// openFanout opens the directory XX beneath the store, once: the
// descriptors are kept until Close.
func (s *Store) openFanout(xx string, create bool) (*beneath.Dir, error) {
	if s.dir == nil {
		return nil, &os.PathError{Op: "open", Path: s.path + "/" + xx, Err: unix.ENOENT}
	}
	s.fanMu.Lock()
	defer s.fanMu.Unlock()
	if d := s.fan[xx]; d != nil {
		return d, nil
	}
	d, err := s.dir.Dir(xx, create)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.fan[xx] = d
	return d, nil
}

// tmpDir returns the directory for named temporary files.
func (s *Store) tmpDir() (*beneath.Dir, error) {
	s.tmpOnce.Do(func() {
		if s.ownTmp {
			s.tmp, s.tmpErr = s.dir.Dir(".tmp", true)
			return
		}
		f, err := s.opts.TmpDir()
		if err != nil {
			s.tmpErr = err
			return
		}
		defer f.Close()
		s.tmp, s.tmpErr = beneath.FromFile(f, f.Name())
	})
	return s.tmp, s.tmpErr
}

// buffer returns a copy buffer; put it back with putBuffer.
func (s *Store) buffer() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 256<<10)
	return &b
}

func (s *Store) putBuffer(b *[]byte) { s.bufs.Put(b) }
