//go:build linux

package fuse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// measureVerity is fsverity.Measure; tests replace it.
var measureVerity = fsverity.Measure

// cacheTimeout is how long the kernel may cache entries and attributes:
// the image never changes.
const cacheTimeout = 24 * time.Hour

// Server is a mounted image being served.
type Server struct {
	srv    *gofuse.Server
	fsys   *fileSystem
	target string
	done   chan struct{}
}

// Mount serves the composefs image at the path image on target, an existing
// directory, until it is unmounted (Server.Unmount, gocfs umount,
// fusermount3 -u, umount). It returns once the mount is in place; the
// requests are served by goroutines of the calling process, which must
// stay alive as long as the mount is used.
//
// Errors name what to fix: no basedir or an unusable one
// (ErrInvalidOptions), an image that is not a composefs image
// (ErrNotComposefs) or that the erofs package refuses, a digest
// mismatch (ErrDigestMismatch, with both digests), or the mount itself
// failing (no /dev/fuse, no fusermount3, a bad mount point).
func Mount(imagePath, target string, opts Options) (*Server, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return MountFile(f, target, opts)
}

// MountFile is Mount for an image that is already open for reading. The
// caller keeps ownership of image: the server uses its own descriptor of
// the same file.
func MountFile(imageFile *os.File, target string, opts Options) (_ *Server, retErr error) {
	if len(opts.Basedirs) == 0 {
		return nil, fmt.Errorf("%w: no object store (basedir) given", ErrInvalidOptions)
	}
	var want []byte
	if opts.ExpectedDigest != "" {
		d, err := fsverity.ParseHex(opts.ExpectedDigest, fsverity.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: digest: %w", ErrInvalidOptions, err)
		}
		want = d
	}
	if opts.Verity < VerityTry || opts.Verity > VerityOff {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, opts.Verity)
	}
	var closers []io.Closer
	defer func() {
		if retErr != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()

	fsys := &fileSystem{
		verity:  opts.Verity,
		log:     opts.Log,
		measure: measureVerity,
		digests: map[digestKey]*digestOp{},
		logged:  map[string]bool{},
		ready:   make(chan struct{}),
	}
	for _, dir := range opts.Basedirs {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: basedir %s: %w", ErrInvalidOptions, dir, &os.PathError{Op: "open", Path: dir, Err: err})
		}
		closers = append(closers, fdCloser(fd))
		if err := unix.Faccessat(fd, ".", unix.X_OK, unix.AT_EACCESS); err != nil {
			return nil, fmt.Errorf("%w: basedir %s: cannot search it: %w", ErrInvalidOptions, dir, err)
		}
		fsys.stores = append(fsys.stores, store{path: dir, fd: fd})
	}

	name := imageFile.Name()
	fd, err := unix.FcntlInt(imageFile.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	closers = append(closers, f)
	if _, err := image.ReadVersion(f); err != nil {
		if errors.Is(err, image.ErrNotComposefs) {
			return nil, fmt.Errorf("%s: %w: %w", name, ErrNotComposefs, err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	src, size, err := imageSource(f, name, want)
	if err != nil {
		return nil, err
	}
	if c, ok := src.(io.Closer); ok && src != io.ReaderAt(f) {
		closers = append(closers, c)
	}
	img, err := erofs.Open(src, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fsys.img = img
	if h, ok := img.Composefs(); ok && h.Flags&erofs.ComposefsFlagHasACL != 0 {
		fsys.acl = true
	}
	rootIn, err := img.Inode(img.RootNid())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fsys.dirs = erofs.NewDirGuard(img)
	root := &node{fsys: fsys, in: rootIn, parentIno: ino(rootIn.Nid)}

	timeout := cacheTimeout
	fopts := &fusefs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true,
		RootStableAttr:  &fusefs.StableAttr{Ino: ino(rootIn.Nid)},
		MountOptions:    mountOptions(name, &opts),
	}
	if opts.Log != nil {
		fopts.Logger = log.New(logWriter(opts.Log), "", 0)
	}
	srv, err := fusefs.Mount(target, root, fopts)
	if err != nil {
		return nil, fmt.Errorf("mounting %s on %s with FUSE: %w", name, target, err)
	}
	s := &Server{srv: srv, fsys: fsys, target: target, done: make(chan struct{})}
	if !opts.NoPassthrough {
		if why := probePassthrough(srv, fsys, f); why != "" {
			fsys.logf("gocfs: FUSE passthrough not available (%s): reads go through this process", why)
		} else {
			fsys.passthrough.Store(true)
		}
	}
	close(fsys.ready)
	go func() {
		srv.Wait()
		for _, c := range closers {
			c.Close()
		}
		close(s.done)
	}()
	return s, nil
}

// mountOptions are the go-fuse mount options for an image.
func mountOptions(name string, o *Options) gofuse.MountOptions {
	mo := gofuse.MountOptions{
		Name:                 "composefs",
		FsName:               fsName(name),
		AllowOther:           o.AllowOther,
		Options:              []string{"ro", "default_permissions"},
		DirectMount:          os.Geteuid() == 0,
		DirectMountFlags:     unix.MS_RDONLY,
		EnableAcl:            true, // the kernel caches ACLs, even absent ones, instead of asking each time
		EnableSymlinkCaching: true,
		MaxWrite:             1 << 20,
		Debug:                o.Debug,
	}
	for _, f := range []struct {
		set  bool
		opt  string
		flag uintptr
	}{{o.NoSuid, "nosuid", unix.MS_NOSUID}, {o.NoDev, "nodev", unix.MS_NODEV}, {o.NoExec, "noexec", unix.MS_NOEXEC}} {
		if f.set {
			mo.Options = append(mo.Options, f.opt)
			mo.DirectMountFlags |= f.flag
		}
	}
	return mo
}

// fsName is the mount's source, as the mount table shows it: the image's
// absolute path when mount options can carry it.
func fsName(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	if name == "" || strings.ContainsAny(name, ", \t\n\\\"'") {
		return "composefs"
	}
	return name
}

type logWriter func(string)

func (w logWriter) Write(p []byte) (int, error) {
	w(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type fdCloser int

func (fd fdCloser) Close() error { return unix.Close(int(fd)) }

// probePassthrough tells why FUSE passthrough cannot be used on srv, or ""
// when it can: the kernel must offer it and take an object of each store
// (or the image, when a store has none at hand) as a backing file. All
// objects are served one way or the other: the kernel refuses (EIO) to
// open a file for passthrough while it is open otherwise, and the reverse.
func probePassthrough(srv *gofuse.Server, fsys *fileSystem, img *os.File) string {
	if srv.KernelSettings().Flags64()&gofuse.CAP_PASSTHROUGH == 0 {
		return "the kernel does not offer it; it needs Linux 6.9 with CONFIG_FUSE_PASSTHROUGH"
	}
	for _, s := range fsys.stores {
		f := sampleObject(s)
		if f == nil {
			f = img
		}
		id, errno := srv.RegisterBackingFd(&gofuse.BackingMap{Fd: int32(f.Fd())})
		if f != img {
			f.Close()
		}
		if errno != 0 {
			if errno == unix.EPERM {
				return "registering backing files needs CAP_SYS_ADMIN"
			}
			return fmt.Sprintf("the kernel refuses files of %s as backing files: %v", s.path, errno)
		}
		srv.UnregisterBackingFd(id)
	}
	return ""
}

// sampleObject opens some regular file of the store s (whose objects are in
// subdirectories named by two hex digits), or returns nil when it finds
// none soon.
func sampleObject(s store) *os.File {
	d, err := os.Open(s.path)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(64)
	d.Close()
	for _, n := range names {
		if len(n) != 2 {
			continue
		}
		sd, err := os.Open(filepath.Join(s.path, n))
		if err != nil {
			continue
		}
		ents, _ := sd.ReadDir(8)
		sd.Close()
		for _, e := range ents {
			if e.Type().IsRegular() {
				if fd, err := openBeneath(s.fd, n+"/"+e.Name()); err == nil {
					unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
					return os.NewFile(uintptr(fd), e.Name())
				}
			}
		}
	}
	return nil
}

// Wait waits until the file system is unmounted and the server has
// released everything it held.
func (s *Server) Wait() { <-s.done }

// Unmount unmounts the file system (it fails with EBUSY while files under
// it are open) and waits for the server to stop.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return err
	}
	s.Wait()
	return nil
}

// Passthrough tells whether the server hands objects to the kernel (FUSE
// passthrough), so that reads of them do not go through this process.
func (s *Server) Passthrough() bool { return s.fsys.passthrough.Load() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := &s.fsys.stats
	return Stats{
		Opens:            st.opens.Load(),
		Measured:         st.measured.Load(),
		Hashed:           st.hashed.Load(),
		HashedMiB:        st.hashedBytes.Load() >> 20,
		CacheHits:        st.cacheHits.Load(),
		Refused:          st.refused.Load(),
		PassthroughOpens: st.passthrough.Load(),
		ObjectReads:      st.reads.Load(),
	}
}

// Unmount unmounts the FUSE mount (or any mount) at target from outside its
// server: with umount2 when allowed, else (for a user's own FUSE mount)
// with fusermount3 -u. lazy detaches it at once even when busy.
func Unmount(target string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(target, flags)
	if err == nil || err != unix.EPERM {
		if err != nil {
			return &os.PathError{Op: "umount", Path: target, Err: err}
		}
		return nil
	}
	bin, lerr := exec.LookPath("fusermount3")
	if lerr != nil {
		if bin, lerr = exec.LookPath("fusermount"); lerr != nil {
			return &os.PathError{Op: "umount", Path: target, Err: err}
		}
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, ferr := exec.Command(bin, append(args, "--", target)...).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("umount %s: %w; %s: %v: %s", target, err, filepath.Base(bin), ferr, bytes.TrimSpace(out))
	}
	return nil
}

// imageSource returns what to read the image open as f from, and its size:
// f itself, or, when want is set and f has no fs-verity, a sealed private
// copy of it. Either way its fs-verity digest is want.
func imageSource(f *os.File, name string, want []byte) (io.ReaderAt, int64, error) {
	if want == nil {
		st, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	src, size, err := mount.VerifiedImage(f, name, want)
	if err != nil {
		return nil, 0, err
	}
	return src, size, nil
}
