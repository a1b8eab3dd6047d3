// Package scan builds a [tree.Node] from a directory on disk, the way
// upstream mkcomposefs reads a source directory.
//
// Every entry's lstat fields, symlink target and xattrs are read; regular
// files get their fs-verity digest and their object-store path as payload,
// and files of at most 64 bytes are inlined. Scanning and hashing run in
// parallel, but the tree is the same whatever the order the work finishes
// in. As upstream does, each name of a hard-linked file becomes a file of its
// own unless [Options.PreserveHardlinks] is set, and link counts of
// non-directories are 1.
//
// Files with fs-verity enabled are measured by the kernel, not read. With
// a [DigestCache] (Options.Cache), files unchanged since a scan hashed them
// are not opened at all: a rebuild of an unchanged tree costs the walk.
//
//	cache, err := scan.OpenDigestCache(".digest-cache", fsverity.SHA256)
//	...
//	root, err := scan.Dir("rootfs", scan.Options{Cache: cache})
//	...
//	err = cache.Save()
package scan

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/tree"
)

// Options control what is read.
type Options struct {
	SkipXattrs     bool // store no xattrs
	UserXattrsOnly bool // store only user.* xattrs
	SkipDevices    bool // leave out block and character devices
	UseEpoch       bool // set every mtime to 0
	// PreserveHardlinks keeps hard links between non-directories found in
	// the tree (the first name in path order holds the inode).
	PreserveHardlinks bool
	// NoDigests skips computing digests and inlining (only stat data).
	NoDigests bool
	// Store, when not nil, stores the content of every regular file that
	// is not inlined as the scan reads it, so that each file is read
	// once: it is given the open file and the size stat gave, and returns
	// the fs-verity digest of the very bytes it stored (a store.Writer's
	// PutFile does), which becomes the file's digest and payload. The
	// image then names exactly what was stored, even of a file that
	// changes meanwhile.
	Store func(f *os.File, size int64) (digest.Digest, error)
	// Stored, with Cache and Store, tells whether content of a digest is
	// stored already: a file whose cached digest it reports stored is
	// neither opened nor given to Store.
	Stored func(digest.Digest) (bool, error)
	// Cache, when not nil, gives the digests of files unchanged since a
	// scan hashed them, which are then not read, and learns those of the
	// files read (the caller saves it). Its algorithm must be Algorithm.
	Cache *DigestCache
	// Algorithm is the fs-verity algorithm of the digests (0: SHA256).
	Algorithm fsverity.Algorithm
	// Threads bounds parallel work; <= 0 means the number of CPUs.
	Threads int
}

// Error is a failure on one path of the source.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("error accessing %s: %v", e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Dir scans the directory at path.
func Dir(path string, opts Options) (*tree.Node, error) {
	return DirContext(context.Background(), path, opts)
}

type fileID struct{ dev, ino uint64 }

type scanner struct {
	opts    Options
	threads int
	alg     fsverity.Algorithm
	ctx     context.Context
	mu      sync.Mutex
	err     error
	sem     chan struct{}
	wg      sync.WaitGroup
	ids     map[*tree.Node]fileID
	files   []fileJob      // collected when hard links are preserved
	filesM  sync.Mutex     // guards files
	jobs    chan fileJob   // otherwise streamed to the digest workers
	dwg     sync.WaitGroup // digest workers
}

type fileJob struct {
	node   *tree.Node
	path   string
	fd     int          // an open descriptor of the file, or -1 to open path
	st     *unix.Stat_t // its status before it was read, for Options.Cache
	verity bool         // it may have fs-verity enabled (statx said so, or can't tell)
}

// checkAlgorithm returns the algorithm opts select, checking the cache's.
func checkAlgorithm(opts Options) (fsverity.Algorithm, error) {
	alg := opts.Algorithm
	if alg == 0 {
		alg = fsverity.SHA256
	}
	if !alg.Valid() {
		return 0, fmt.Errorf("scan: %w: %d", fsverity.ErrUnknownAlgorithm, alg)
	}
	if opts.Cache != nil && opts.Cache.alg != alg {
		return 0, fmt.Errorf("scan: digest cache %s holds %v digests, the scan makes %v", opts.Cache.path, opts.Cache.alg, alg)
	}
	return alg, nil
}

// DirContext is Dir with a context that can cancel the scan.
func DirContext(ctx context.Context, path string, opts Options) (*tree.Node, error) {
	if opts.SkipXattrs && opts.UserXattrsOnly {
		return nil, errors.New("scan: SkipXattrs and UserXattrsOnly conflict")
	}
	alg, err := checkAlgorithm(opts)
	if err != nil {
		return nil, err
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	s := &scanner{opts: opts, threads: threads, alg: alg, ctx: ctx, sem: make(chan struct{}, threads*2)}
	if opts.Cache != nil {
		opts.Cache.mu.Lock()
		opts.Cache.setStart(now())
		opts.Cache.mu.Unlock()
	}
	if opts.PreserveHardlinks {
		s.ids = make(map[*tree.Node]fileID)
	}
	// Without hard links to find, files are hashed while the scan goes on;
	// otherwise they are hashed once the links are known.
	if !opts.NoDigests && !opts.PreserveHardlinks {
		s.jobs = make(chan fileJob, 4096)
		s.startDigesters(s.jobs, threads)
	}
	root := new(tree.Node)
	ok, err := s.loadNodeAt(unix.AT_FDCWD, path, path, root)
	if err == nil && !ok {
		err = &Error{path, errors.New("a device, which the options leave out, can't be the source")}
	}
	if err == nil && root.IsDir() {
		s.wg.Add(1)
		s.scanDir(root, path)
		s.wg.Wait()
	}
	if s.jobs != nil {
		close(s.jobs)
		s.dwg.Wait()
	}
	if err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	if opts.PreserveHardlinks {
		if err := s.linkHardlinks(root); err != nil {
			return nil, err
		}
		if !opts.NoDigests {
			jobs := make(chan fileJob, len(s.files))
			for _, j := range s.files {
				if j.node.LinkTo == nil {
					jobs <- j
				}
			}
			close(jobs)
			s.startDigesters(jobs, threads)
			s.dwg.Wait()
			if s.err != nil {
				return nil, s.err
			}
		}
	}
	return root, nil
}

func (s *scanner) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *scanner) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && s.ctx.Err() != nil {
		s.err = s.ctx.Err()
	}
	return s.err != nil
}

// scanDir reads one directory and its subdirectories (in parallel where a
// worker slot is free). The directory's children are added under its own
// goroutine only, so no locking of the tree is needed.
func (s *scanner) scanDir(dir *tree.Node, path string) {
	defer s.wg.Done()
	if s.failed() {
		return
	}
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if dir.Parent != nil {
		flags |= unix.O_NOFOLLOW // a directory replaced by a symlink since its lstat
	}
	dirfd, err := openRetry(path, flags)
	if err != nil {
		s.fail(&Error{path, err})
		return
	}
	defer unix.Close(dirfd)
	names, err := readDirNames(dirfd)
	if err != nil {
		s.fail(&Error{path, err})
		return
	}
	// Entries are looked up relative to the directory: cheaper than
	// walking each full path again.
	sort.Strings(names)
	var subdirs []*tree.Node
	var subpaths []string
	// The directory's nodes are allocated together.
	nodes := make([]tree.Node, len(names))
	dir.Children = make([]*tree.Node, 0, len(names))
	for i, name := range names {
		p := filepath.Join(path, name)
		n := &nodes[i]
		ok, err := s.loadNodeAt(dirfd, name, p, n)
		if err != nil {
			s.fail(err)
			return
		}
		if !ok {
			continue
		}
		if err := dir.AddChild(name, n); err != nil {
			s.fail(&Error{p, err})
			return
		}
		if n.IsDir() {
			subdirs = append(subdirs, n)
			subpaths = append(subpaths, p)
		}
	}
	for i, sd := range subdirs {
		s.wg.Add(1)
		select {
		case s.sem <- struct{}{}:
			go func(sd *tree.Node, p string) {
				defer func() { <-s.sem }()
				s.scanDir(sd, p)
			}(sd, subpaths[i])
		default:
			s.scanDir(sd, subpaths[i])
		}
	}
}

// loadNodeAt reads the metadata of name in directory dirfd (whose path is
// path) into n; ok is false for a skipped device.
func (s *scanner) loadNodeAt(dirfd int, name, path string, n *tree.Node) (ok bool, err error) {
	var st unix.Stat_t
	verity, err := statAt(dirfd, name, &st)
	if err != nil {
		return false, &Error{path, err}
	}
	typ := st.Mode & tree.ModeType
	if s.opts.SkipDevices && (typ == tree.ModeBlock || typ == tree.ModeChar) {
		return false, nil
	}
	n.Mode, n.Nlink = st.Mode, 1
	n.UID, n.GID = st.Uid, st.Gid
	n.Rdev = st.Rdev
	n.Size = uint64(st.Size)
	if !s.opts.UseEpoch {
		n.MtimeSec, n.MtimeNsec = st.Mtim.Sec, uint32(st.Mtim.Nsec)
	}
	xattrsDone := false
	switch typ {
	case tree.ModeSymlink:
		target, err := readlinkAt(dirfd, name)
		if err != nil {
			return false, &Error{path, err}
		}
		if err := n.SetSymlink(target); err != nil {
			return false, &Error{path, err}
		}
	case tree.ModeRegular:
		if n.Size > 0 && !s.opts.NoDigests {
			var err error
			if xattrsDone, err = s.regular(n, &st, verity, dirfd, name, path); err != nil {
				return false, err
			}
		}
	}
	if s.ids != nil && typ != tree.ModeDir && st.Nlink > 1 {
		s.mu.Lock()
		s.ids[n] = fileID{st.Dev, st.Ino}
		s.mu.Unlock()
	}
	if !s.opts.SkipXattrs && !xattrsDone {
		if err := s.readXattrs(n, path, -1); err != nil {
			return false, &Error{path, err}
		}
	}
	return true, nil
}

// regular finds the digest of the regular file n (name in dirfd, of
// status st) in the cache, or queues it to be read: xattrsDone says that
// its xattrs are read (or known to be none).
func (s *scanner) regular(n *tree.Node, st *unix.Stat_t, verity bool, dirfd int, name, path string) (xattrsDone bool, err error) {
	var stp *unix.Stat_t
	if c := s.opts.Cache; c != nil {
		ok, noXattrs, err := s.fromCache(n, st, c)
		if err != nil {
			return true, &Error{path, err}
		}
		if ok {
			// Not opened: xattrs by path, unless it has none.
			return noXattrs, nil
		}
		stp = new(unix.Stat_t)
		*stp = *st
	}
	if s.jobs == nil {
		s.filesM.Lock()
		s.files = append(s.files, fileJob{n, path, -1, stp, verity})
		s.filesM.Unlock()
		return false, nil
	}
	// Opened here, relative to its directory, and handed to a digest
	// worker: cheaper than walking the full path again.
	fd, err := openatRetry(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		return true, &Error{path, err}
	}
	if !s.opts.SkipXattrs {
		if err := s.readXattrs(n, path, fd); err != nil {
			unix.Close(fd)
			return true, &Error{path, err}
		}
	}
	j := fileJob{n, path, fd, stp, verity}
	if n.Size > inlineDigestMax {
		s.jobs <- j
		return true, nil
	}
	// A small file is hashed (or stored) here: handing it to a digest
	// worker would cost more than the work itself.
	return true, s.digestHere(j)
}

// inlineDigestMax is the largest file the walk hashes itself rather than
// hand to a digest worker.
const inlineDigestMax = 256 << 10

// scratch is a digest worker's hasher and read buffer; the walk borrows
// one from scratchPool for each small file it hashes.
type scratch struct {
	h   *fsverity.Hasher
	buf []byte
}

var scratchPool sync.Pool

// digestHere hashes the job's file on the walk's goroutine.
func (s *scanner) digestHere(j fileJob) error {
	sc, _ := scratchPool.Get().(*scratch)
	if sc == nil || sc.h.Algorithm() != s.alg {
		sc = &scratch{h: fsverity.New(s.alg), buf: make([]byte, readBufSize)}
	}
	defer scratchPool.Put(sc)
	return s.finishJob(j, sc)
}

// readBufSize is the size of the buffer files are read through.
const readBufSize = 128 << 10

// allXattrs tells whether every xattr of a file is read.
func (s *scanner) allXattrs() bool { return !s.opts.SkipXattrs && !s.opts.UserXattrsOnly }

// fromCache sets n's digest from the cache when it has the file of status
// st (and, storing, when the store has its object): ok says it did;
// noXattrs that the file has no xattrs to read.
func (s *scanner) fromCache(n *tree.Node, st *unix.Stat_t, c *DigestCache) (ok, noXattrs bool, err error) {
	if n.Size <= tree.RecommendedInlineMax {
		return false, false, nil // the content is needed
	}
	d, noXattrs, ok := c.lookup(st)
	if !ok {
		return false, false, nil
	}
	if s.opts.Store != nil {
		if s.opts.Stored == nil {
			return false, false, nil
		}
		dd, err := digest.New(s.alg, d)
		if err != nil {
			return false, false, err
		}
		if ok, err := s.opts.Stored(dd); !ok || err != nil {
			return false, false, err
		}
	}
	setPayload(n, d)
	return true, noXattrs && s.allXattrs(), nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > tree.MaxPathLen+1 {
			return "", tree.ErrPathTooLong
		}
	}
}

// readXattrs reads the xattrs of n, through fd when it is >= 0, else by
// path (not following a symlink).
func (s *scanner) readXattrs(n *tree.Node, path string, fd int) error {
	list := func(b []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(path, b)
	}
	get := func(name string, b []byte) (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, name, b)
		}
		return unix.Lgetxattr(path, name, b)
	}
	var small [512]byte
	buf := small[:]
	var size int
	for {
		sz, err := list(buf)
		if err == unix.ERANGE {
			sz, err = list(nil)
			if err != nil {
				return err
			}
			buf = make([]byte, sz*2)
			continue
		}
		if err == unix.ENOTSUP {
			return nil
		}
		if err != nil {
			return err
		}
		size = sz
		break
	}
	if size == 0 {
		return nil
	}
	val := make([]byte, 256)
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if name == "" {
			continue
		}
		if s.opts.UserXattrsOnly && !strings.HasPrefix(name, "user.") {
			continue
		}
		var v []byte
		for {
			sz, err := get(name, val)
			if err == unix.ERANGE {
				sz, err = get(name, nil)
				if err != nil {
					return fmt.Errorf("xattr %s: %w", name, err)
				}
				val = make([]byte, sz)
				continue
			}
			if err != nil {
				return fmt.Errorf("xattr %s: %w", name, err)
			}
			v = val[:sz]
			break
		}
		if err := n.SetXattr(name, v); err != nil {
			return err
		}
	}
	return nil
}

// linkHardlinks turns every later name of an inode seen earlier (in path
// order) into a hard link.
func (s *scanner) linkHardlinks(root *tree.Node) error {
	first := make(map[fileID]*tree.Node)
	return root.Walk(func(p string, n *tree.Node) error {
		id, ok := s.ids[n]
		if !ok {
			return nil
		}
		t := first[id]
		if t == nil {
			first[id] = n
			return nil
		}
		n.LinkTo = nil
		if err := n.MakeHardlink(t); err != nil {
			return &Error{p, err}
		}
		*n = tree.Node{Name: n.Name, Parent: n.Parent, LinkTo: t, Mode: n.Mode}
		return nil
	})
}

// startDigesters starts workers computing each regular file's fs-verity
// digest and payload, inlining small files. Failures go to s.fail; after one,
// the remaining jobs are drained unread.
func (s *scanner) startDigesters(jobs <-chan fileJob, threads int) {
	for w := 0; w < threads; w++ {
		s.dwg.Add(1)
		go func() {
			defer s.dwg.Done()
			sc := &scratch{h: fsverity.New(s.alg), buf: make([]byte, readBufSize)}
			for j := range jobs {
				if s.failed() {
					if j.fd >= 0 {
						unix.Close(j.fd)
					}
					continue
				}
				if err := s.finishJob(j, sc); err != nil {
					s.fail(err)
				}
			}
		}()
	}
}

// finishJob digests the job's file and tells the cache, if any.
func (s *scanner) finishJob(j fileJob, sc *scratch) error {
	if err := s.digestFile(j, sc.h, sc.buf); err != nil {
		return err
	}
	if s.opts.Cache != nil && j.st != nil && j.node.Content == nil {
		s.opts.Cache.add(j.st, j.node.Digest, s.allXattrs() && len(j.node.Xattrs) == 0)
	}
	return nil
}

// measureVerity is fsverity.MeasureFD; tests replace it.
var measureVerity = fsverity.MeasureFD

// parallelMin is the size from which one file is hashed by several
// goroutines, so that a large file late in the scan doesn't leave the other
// cores idle.
const parallelMin = 16 << 20

// digestFile sets the digest and payload of the job's file (or its
// content, when it is inlined): stored through Options.Store, measured by
// the kernel when the file has fs-verity, else read and hashed.
func (s *scanner) digestFile(j fileJob, h *fsverity.Hasher, buf []byte) error {
	fd := j.fd
	if fd < 0 {
		var err error
		fd, err = openRetry(j.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
		if err != nil {
			return &Error{j.path, err}
		}
	}
	n := j.node
	if n.Size > tree.RecommendedInlineMax && s.opts.Store != nil {
		f := os.NewFile(uintptr(fd), j.path)
		defer f.Close()
		return storeFile(f, j, s.opts.Store)
	}
	defer unix.Close(fd)
	if n.Size > tree.RecommendedInlineMax {
		if j.verity && s.measured(fd, j.path, n) {
			return nil
		}
		if n.Size >= parallelMin && s.threads > 1 {
			return digestLarge(fd, j, s.alg, s.threads)
		}
	}
	return readDigest(fd, j, h, buf)
}

// measured sets n's digest from the kernel when f has fs-verity enabled
// with the scan's algorithm: ok says it did. Any failure of the ioctl
// (whatever errno a file system answers it with) leaves the file to be
// read, which reports a real I/O error.
func (s *scanner) measured(fd int, path string, n *tree.Node) bool {
	alg, d, err := measureVerity(fd, path)
	if err != nil || alg != s.alg || len(d) != s.alg.Size() {
		return false
	}
	setPayload(n, d)
	return true
}

// readDigest reads the job's file from fd and hashes it, keeping its
// content when it is to be inlined.
func readDigest(fd int, j fileJob, h *fsverity.Hasher, buf []byte) error {
	n := j.node
	h.Reset()
	var content []byte
	if n.Size <= tree.RecommendedInlineMax {
		content = make([]byte, 0, n.Size)
	}
	// Exactly the size lstat gave is read (the image says that size): no
	// read for the end of the file, which costs a system call per file.
	var total uint64
	for total < n.Size {
		want := min(uint64(len(buf)), n.Size-total)
		k, err := unix.Read(fd, buf[:want])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &Error{j.path, err}
		}
		if k == 0 {
			break
		}
		h.Write(buf[:k])
		if content != nil {
			content = append(content, buf[:k]...)
		}
		total += uint64(k)
	}
	if total != n.Size {
		return &Error{j.path, fmt.Errorf("file changed size while being read (%d bytes, then %d)", n.Size, total)}
	}
	setPayload(n, h.Sum(nil))
	if content != nil {
		return n.SetContent(content)
	}
	return nil
}

// setPayload sets n's digest and its object path ("XX/REST" in hex) as
// payload, both in one allocation (the path's bytes are never written
// again once made a string).
func setPayload(n *tree.Node, digest []byte) {
	k := len(digest)
	if k == 0 || k > fsverity.MaxDigestSize {
		n.Digest, n.Payload = digest, ""
		return
	}
	buf := make([]byte, 3*k+1)
	copy(buf, digest)
	p := buf[k:]
	hex.Encode(p[:2], digest[:1])
	p[2] = '/'
	hex.Encode(p[3:], digest[1:])
	n.Digest = buf[:k:k]
	n.Payload = unsafe.String(&p[0], len(p))
}

// storeFile stores the file through Options.Store, which gives its
// digest.
func storeFile(f *os.File, j fileJob, store func(*os.File, int64) (digest.Digest, error)) error {
	d, err := store(f, int64(j.node.Size))
	if err != nil {
		return &Error{j.path, err}
	}
	setPayload(j.node, d.Bytes())
	return nil
}

// digestLarge hashes a large file with several goroutines.
func digestLarge(fd int, j fileJob, alg fsverity.Algorithm, threads int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &Error{j.path, err}
	}
	if uint64(st.Size) != j.node.Size {
		return &Error{j.path, fmt.Errorf("file changed size while being read (%d bytes, then %d)", j.node.Size, st.Size)}
	}
	d, err := fsverity.DigestReaderAt(context.Background(), fdReaderAt(fd), st.Size, alg, threads)
	if err != nil {
		return &Error{j.path, err}
	}
	setPayload(j.node, d)
	return nil
}

// fdReaderAt reads a descriptor with pread (it doesn't own the descriptor).
type fdReaderAt int

func (f fdReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(int(f), p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}
