//go:build linux

package fuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/store"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// fileSystem is what every node of a mount shares.
type fileSystem struct {
	img    *erofs.Image
	stores []*store.Store // the basedirs, opened read-only
	verity VerityMode
	acl    bool // the image carries POSIX ACLs
	log    func(string)

	// measure is measureVerity.
	measure func(*os.File) (fsverity.Algorithm, []byte, error)

	passthrough atomic.Bool
	ready       chan struct{} // closed once passthrough is decided
	noXattrs    atomic.Bool   // no inode has an xattr shown (scanXattrs)

	mu      sync.Mutex
	dirs    *erofs.DirGuard         // the entry each directory was reached through
	digests map[digestKey]*digestOp // object digests, by object identity
	logged  map[string]bool         // messages logged once

	stats struct {
		opens, measured, hashed, hashedBytes, cacheHits, refused, passthrough, reads atomic.Uint64
	}
}

// maxDigests bounds the digest cache; it is emptied when full.
const maxDigests = 1 << 20

func (fsys *fileSystem) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if fsys.log != nil {
		fsys.log(msg)
		return
	}
	log.Print(msg)
}

// logOnce logs a message the first time key is seen.
func (fsys *fileSystem) logOnce(key, format string, args ...any) {
	fsys.mu.Lock()
	seen := fsys.logged[key]
	if !seen && len(fsys.logged) < maxDigests {
		fsys.logged[key] = true
	}
	fsys.mu.Unlock()
	if !seen {
		fsys.logf(format, args...)
	}
}

// corrupt logs, once per inode, a problem of the image met while serving
// it (the request fails with EIO).
func (fsys *fileSystem) corrupt(nid uint64, err error) {
	fsys.logOnce(fmt.Sprintf("corrupt %d", nid), "gocfs: image: inode %d: %v", nid, err)
}

// objectHandle is an open object, checked.
type objectHandle struct {
	f           *os.File
	passthrough bool
	reads       *atomic.Uint64
}

// PassthroughFd hands the checked file to the kernel for passthrough.
func (h *objectHandle) PassthroughFd() (int, bool) {
	if !h.passthrough {
		return -1, false
	}
	return int(h.f.Fd()), true
}

// Read reads the object, for mounts without passthrough.
func (h *objectHandle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	h.reads.Add(1)
	n, err := h.f.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, syscall.EIO
	}
	return gofuse.ReadResultData(dest[:n]), 0
}

// Release closes the object (the kernel keeps its own reference for
// passthrough as long as it needs one).
func (h *objectHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	return 0
}

// openObject opens the object of regular file n and checks it as the
// verity mode says.
func (fsys *fileSystem) openObject(n *node, m *nodeMeta) (*objectHandle, syscall.Errno) {
	fsys.stats.opens.Add(1)
	refuse := func(key, format string, args ...any) (*objectHandle, syscall.Errno) {
		fsys.stats.refused.Add(1)
		fsys.logOnce(key, format, args...)
		return nil, syscall.EIO
	}
	nid := n.in.Nid
	switch {
	case m.badMetacopy:
		return refuse(fmt.Sprintf("metacopy %d", nid), "gocfs: integrity: %s: malformed trusted.overlay.metacopy xattr: refusing to serve it", n.path())
	case m.redirect == "" || !validObjectPath(m.redirect):
		return refuse(fmt.Sprintf("redirect %d", nid), "gocfs: image: %s: invalid object path %q in trusted.overlay.redirect: refusing to serve it", n.path(), m.redirect)
	case m.digest == nil && fsys.verity == VerityRequire:
		return refuse(fmt.Sprintf("nodigest %d", nid), "gocfs: integrity: %s: no fs-verity digest in the image, and verity is required: refusing to serve it", n.path())
	}
	<-fsys.ready
	f, where, err := fsys.findObject(m.redirect)
	if err != nil {
		return refuse("object "+m.redirect, "gocfs: %s: object %s: %v", n.path(), m.redirect, err)
	}
	if m.digest != nil && fsys.verity != VerityOff {
		if err := fsys.verify(f, m.digestAlg, m.digest); err != nil {
			f.Close()
			return refuse("verify "+where+" "+fsverity.Hex(m.digest), "gocfs: integrity: %s: object %s: %v: refusing to serve it (EIO)", n.path(), where, err)
		}
	}
	h := &objectHandle{f: f, passthrough: fsys.passthrough.Load(), reads: &fsys.stats.reads}
	if h.passthrough {
		fsys.stats.passthrough.Add(1)
	}
	return h, 0
}

// validObjectPath tells whether p is a relative path with no empty, "."
// or ".." component: what an object path may be.
func validObjectPath(p string) bool { return beneath.ValidPath(p) }

// findObject opens the object at path p in the first store that has it,
// never leaving the store (no "..", no symlinks, no magic links) and only
// if it is a regular file. where is its path, for messages.
func (fsys *fileSystem) findObject(p string) (f *os.File, where string, err error) {
	var firstErr error
	for _, s := range fsys.stores {
		f, err := s.OpenPath(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		where = s.Dir() + "/" + p
		if errors.Is(err, store.ErrUnexpected) && !errors.Is(err, beneath.ErrSymlink) {
			return nil, where, err // not a regular file
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return f, where, nil
	}
	if firstErr != nil {
		return nil, "", firstErr
	}
	return nil, "", fmt.Errorf("not found in any object store (%w)", os.ErrNotExist)
}

// digestKey identifies an object's content as far as its metadata can:
// a file with the same device, inode number, size, mtime and ctime is
// taken to hold what it held when its digest was computed.
type digestKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
	alg          fsverity.Algorithm
}

func keyOf(st *unix.Stat_t, alg fsverity.Algorithm) digestKey {
	return digestKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, alg: alg}
}

// digestOp is an object digest, computed once however many opens want it.
type digestOp struct {
	done     chan struct{}
	digest   []byte
	alg      fsverity.Algorithm // of the digest: the kernel's, when measured
	measured bool
	err      error
}

// errChanged reports an object that changed while its digest was being
// computed.
var errChanged = errors.New("the object changed while its digest was being computed")

// verify checks that the object open as f has the fs-verity digest want.
func (fsys *fileSystem) verify(f *os.File, alg fsverity.Algorithm, want []byte) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	key := keyOf(&st, alg)
	fsys.mu.Lock()
	op, cached := fsys.digests[key]
	if !cached {
		if len(fsys.digests) >= maxDigests {
			clear(fsys.digests)
		}
		op = &digestOp{done: make(chan struct{})}
		fsys.digests[key] = op
	}
	fsys.mu.Unlock()
	if cached {
		<-op.done
		if op.err == nil {
			fsys.stats.cacheHits.Add(1)
		}
	} else {
		op.alg, op.digest, op.measured, op.err = fsys.digestOf(f, &st, alg)
		if op.err != nil {
			// Errors are not facts about the object: try again at
			// the next open.
			fsys.mu.Lock()
			if fsys.digests[key] == op {
				delete(fsys.digests, key)
			}
			fsys.mu.Unlock()
		}
		close(op.done)
	}
	if op.err != nil {
		return op.err
	}
	if op.alg != alg {
		return fmt.Errorf("fs-verity is enabled with %v, but the image expects a %v digest", op.alg, alg)
	}
	if !bytes.Equal(op.digest, want) {
		how := "has"
		if op.measured {
			how = "has (fs-verity)"
		}
		return fmt.Errorf("digest mismatch: %s %s, the image expects %s", how, fsverity.Hex(op.digest), fsverity.Hex(want))
	}
	return nil
}

// digestOf returns the fs-verity digest of the object open as f: the
// kernel's when it has fs-verity, else one computed from f.
func (fsys *fileSystem) digestOf(f *os.File, st *unix.Stat_t, alg fsverity.Algorithm) (fsverity.Algorithm, []byte, bool, error) {
	kalg, d, err := fsys.measure(f)
	switch {
	case err == nil:
		fsys.stats.measured.Add(1)
		return kalg, d, true, nil
	case errors.Is(err, fsverity.ErrNotEnabled), errors.Is(err, fsverity.ErrNotSupported):
	default:
		return 0, nil, false, err
	}
	workers := 1
	if st.Size >= 8<<20 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	d, err = fsverity.DigestReaderAt(context.Background(), f, st.Size, alg, workers)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errChanged
		}
		return 0, nil, false, err
	}
	fsys.stats.hashed.Add(1)
	fsys.stats.hashedBytes.Add(uint64(st.Size))
	// The digest is of what the file held if it did not change meanwhile.
	var st2 unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st2); err != nil {
		return 0, nil, false, err
	}
	if keyOf(&st2, alg) != keyOf(st, alg) {
		return 0, nil, false, errChanged
	}
	return alg, d, false, nil
}
