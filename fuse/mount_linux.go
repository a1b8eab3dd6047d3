//go:build linux

package fuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/store"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// measureVerity is fsverity.Measure; tests replace it.
var measureVerity = fsverity.Measure

// cacheTimeout is how long the kernel may cache entries, attributes and
// missing names: for good, since the image never changes (the kernel
// clamps the time to the longest it can keep).
const cacheTimeout = time.Duration(math.MaxInt64)

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
// opts are those of every composefs mount (package mount): Basedirs,
// ExpectedDigest, Verity, NoVerify, AllowDevices, AllowSetuid, NoExec,
// FUSE and Notice are used; ReadOnly and the access time flags mean nothing
// to a read-only FUSE mount; the kernel-only options (upperdir, workdir,
// idmap, a mount namespace) and Method Kernel are refused.
//
// Before the kernel sees anything, the image is checked: its digest when
// opts.ExpectedDigest is set, then its structure (mount.CheckImage) unless
// opts.NoVerify is set, and its root directory. Errors name what to fix:
// no basedir or an unusable one (ErrInvalidOptions), an image that is not a
// composefs image (ErrNotComposefs) or that the check refuses
// (ErrInvalidImage, with what it found), a digest mismatch
// (ErrDigestMismatch, with both digests), or the mount itself failing (no
// /dev/fuse, no fusermount3, a bad mount point). On error nothing is left
// mounted.
func Mount(imagePath, target string, opts mount.Options) (*Server, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, fmt.Errorf("composefs image: %w", err)
	}
	defer f.Close()
	return MountFile(f, target, opts)
}

// MountFile is Mount for an image that is already open for reading. The
// caller keeps ownership of image: the server uses its own descriptor of
// the same file (or a private copy, see the package documentation).
func MountFile(imageFile *os.File, target string, opts mount.Options) (_ *Server, retErr error) {
	want, err := validate(&opts)
	if err != nil {
		return nil, err
	}
	var closers []io.Closer
	defer func() {
		if retErr != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	fsys := newFileSystem(&opts)
	if closers, err = fsys.openStores(opts.Basedirs); err != nil {
		return nil, err
	}
	name := imageFile.Name()
	f, src, err := openImage(imageFile, name, want, opts.NoVerify)
	if f != nil {
		closers = append(closers, f)
	}
	if src != nil && src != f {
		closers = append(closers, src)
	}
	if err != nil {
		return nil, err
	}
	root, err := fsys.openRoot(src, name)
	if err != nil {
		return nil, err
	}
	srv, err := serve(target, root, fsys, mountOptions(name, &opts))
	if err != nil {
		return nil, fmt.Errorf("FUSE mount: %w", err)
	}
	s := &Server{srv: srv, fsys: fsys, target: target, done: make(chan struct{})}
	if !opts.FUSE.NoPassthrough {
		if why := probePassthrough(srv, fsys, f); why != "" {
			fsys.logf("FUSE passthrough not available (%s): reads go through this process", why)
		} else {
			fsys.passthrough.Store(true)
		}
	}
	close(fsys.ready)
	scanCtx, stopScan := context.WithCancel(context.Background())
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		fsys.scanXattrs(scanCtx)
	}()
	go func() {
		srv.Wait()
		stopScan()
		<-scanned
		for _, c := range closers {
			c.Close()
		}
		close(s.done)
	}()
	return s, nil
}

// validate checks opts for a FUSE mount and returns the expected digest
// decoded.
func validate(opts *mount.Options) ([]byte, error) {
	want, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	if opts.Method == mount.Kernel {
		return nil, fmt.Errorf("%w: method kernel: this package mounts with FUSE (use package mount or mounter)", ErrInvalidOptions)
	}
	if k := opts.KernelOnly(); k != "" {
		return nil, fmt.Errorf("%w: FUSE mounts are read-only and cannot have %s; that needs the kernel mount", ErrInvalidOptions, k)
	}
	return want, nil
}

// newFileSystem returns the file system to serve, without image or stores.
func newFileSystem(opts *mount.Options) *fileSystem {
	return &fileSystem{
		verity:  opts.Verity,
		log:     opts.Notice,
		measure: measureVerity,
		digests: map[digestKey]*digestOp{},
		logged:  map[string]bool{},
		ready:   make(chan struct{}),
	}
}

// openStores opens the object stores, and returns what closes them.
func (fsys *fileSystem) openStores(dirs []string) ([]io.Closer, error) {
	var closers []io.Closer
	for _, dir := range dirs {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return closers, fmt.Errorf("%w: basedir %s: %w", ErrInvalidOptions, dir, &os.PathError{Op: "open", Path: dir, Err: err})
		}
		err = unix.Faccessat(fd, ".", unix.X_OK, unix.AT_EACCESS)
		unix.Close(fd)
		if err != nil {
			return closers, fmt.Errorf("%w: basedir %s: cannot search it: %w", ErrInvalidOptions, dir, err)
		}
		s, err := store.Open(dir, store.Options{ReadOnly: true})
		if err != nil {
			return closers, fmt.Errorf("%w: basedir %s: %w", ErrInvalidOptions, dir, err)
		}
		closers = append(closers, s)
		fsys.stores = append(fsys.stores, s)
	}
	return closers, nil
}

// openImage checks the image open as imageFile (called name): its header,
// its digest when want is set, and, unless noVerify, its structure. It
// returns the server's own descriptor of the file (f, which the caller
// closes even on error) and what to serve from (src: f, or a sealed copy
// that the caller closes too).
func openImage(imageFile *os.File, name string, want []byte, noVerify bool) (f, src *os.File, err error) {
	fd, err := unix.FcntlInt(imageFile.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("composefs image %s: %w", name, err)
	}
	f = os.NewFile(uintptr(fd), name)
	if _, err := image.ReadVersion(f); err != nil {
		if errors.Is(err, image.ErrNotComposefs) {
			return f, nil, fmt.Errorf("%s: %w: %w", name, ErrNotComposefs, err)
		}
		return f, nil, fmt.Errorf("%s: %w", name, err)
	}
	src, size := f, int64(0)
	if want != nil {
		// Read from f itself when it has fs-verity, otherwise from a
		// sealed copy whose digest was computed: what was checked is
		// what is served.
		if src, size, err = mount.VerifiedImage(f, name, want); err != nil {
			return f, nil, err
		}
	} else {
		st, err := f.Stat()
		if err != nil {
			return f, nil, fmt.Errorf("composefs image %s: %w", name, err)
		}
		size = st.Size()
	}
	if !noVerify {
		if err := mount.CheckImage(src, size, name); err != nil {
			return f, src, err
		}
	}
	return f, src, nil
}

// openRoot opens the image in src with the erofs reader and returns the
// root node to serve, after checking that the root directory reads (even
// when the structural check was skipped): a mount whose root fails is of
// no use, and would be left dead.
func (fsys *fileSystem) openRoot(src *os.File, name string) (*node, error) {
	st, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("composefs image %s: %w", name, err)
	}
	img, err := erofs.Open(src, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fsys.img = img
	if h, ok := img.Composefs(); ok && h.Flags&erofs.ComposefsFlagHasACL != 0 {
		fsys.acl = true
	}
	rootIn, err := img.Inode(img.RootNid())
	if err != nil {
		return nil, fmt.Errorf("%s: root directory: %w", name, err)
	}
	if !rootIn.IsDir() {
		return nil, fmt.Errorf("%s: %w: the root inode (nid %d) is not a directory", name, ErrInvalidImage, rootIn.Nid)
	}
	// What the kernel asks first, for the mount point itself: its
	// entries and its xattrs (ACLs among them).
	if _, err := fsys.readDir(rootIn); err != nil {
		return nil, fmt.Errorf("%s: root directory: %w", name, err)
	}
	if _, err := fsys.decodeMeta(rootIn); err != nil {
		return nil, fmt.Errorf("%s: root directory: %w", name, err)
	}
	fsys.dirs = erofs.NewDirGuard(img)
	return &node{fsys: fsys, in: rootIn, parentIno: ino(rootIn.Nid)}, nil
}

// serve mounts the file system rooted at root on target and starts
// serving it. When the mount is made but does not work (go-fuse's check
// that the kernel reaches the server fails), it is unmounted again, so
// that a failure leaves nothing behind.
func serve(target string, root *node, fsys *fileSystem, mo gofuse.MountOptions) (*gofuse.Server, error) {
	timeout := cacheTimeout
	fopts := &fusefs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true,
		RootStableAttr:  &fusefs.StableAttr{Ino: ino(root.in.Nid)},
		MountOptions:    mo,
	}
	if fsys.log != nil {
		fopts.Logger = log.New(logWriter(fsys.log), "", 0)
	}
	srv, err := gofuse.NewServer(fusefs.NewNodeFS(root, fopts), target, &fopts.MountOptions)
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		if uerr := srv.Unmount(); uerr != nil {
			// Detach it at least; the server loop ends with it.
			if lerr := Unmount(target, true); lerr != nil {
				return nil, fmt.Errorf("%w (and the mount could not be removed: %v; %v)", err, uerr, lerr)
			}
		}
		return nil, err
	}
	return srv, nil
}

// mountOptions are the go-fuse mount options for an image.
func mountOptions(name string, o *mount.Options) gofuse.MountOptions {
	mo := gofuse.MountOptions{
		Name:                 "composefs",
		FsName:               fsName(name),
		AllowOther:           o.FUSE.AllowOther,
		Options:              []string{"ro", "default_permissions"},
		DirectMount:          os.Geteuid() == 0,
		DirectMountFlags:     unix.MS_RDONLY,
		EnableAcl:            true, // the kernel caches ACLs, even absent ones, instead of asking each time
		EnableSymlinkCaching: true,
		MaxWrite:             1 << 20,
		Debug:                o.FUSE.Debug,
	}
	for _, f := range []struct {
		set  bool
		opt  string
		flag uintptr
	}{{!o.AllowSetuid, "nosuid", unix.MS_NOSUID}, {!o.AllowDevices, "nodev", unix.MS_NODEV}, {o.NoExec, "noexec", unix.MS_NOEXEC}} {
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
			return fmt.Sprintf("the kernel refuses files of %s as backing files: %v", s.Dir(), errno)
		}
		srv.UnregisterBackingFd(id)
	}
	return ""
}

// sampleObject opens some regular file of the store s (whose objects are in
// subdirectories named by two hex digits), or returns nil when it finds
// none soon.
func sampleObject(s *store.Store) *os.File {
	d, err := os.Open(s.Dir())
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(64)
	d.Close()
	for _, n := range names {
		if len(n) != 2 {
			continue
		}
		sd, err := os.Open(filepath.Join(s.Dir(), n))
		if err != nil {
			continue
		}
		ents, _ := sd.ReadDir(8)
		sd.Close()
		for _, e := range ents {
			if e.Type().IsRegular() {
				if f, err := s.OpenPath(n + "/" + e.Name()); err == nil {
					return f
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
