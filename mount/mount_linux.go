//go:build linux

package mount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The composefs header at the start of an image, and the EROFS superblock
// after it.
const (
	composefsMagic  = 0xd078629a
	headerSize      = 32
	headerFlagACL   = 1 << 0 // the image has POSIX ACLs
	erofsSuperOff   = 1024
	erofsSuperMagic = 0xe0f5e1e2
)

// mountSource is the "source" overlayfs shows for a composefs mount.
const mountSource = "composefs"

// Mount mounts the composefs image at the path image on target, an existing
// directory, with the kernel. See the package documentation for what it
// does; opts says where the objects are and how to mount (opts.Method must
// not be FUSE; opts.FUSE is ignored).
//
// On error nothing is left mounted and no loop device stays attached.
// Errors name what to fix: a missing or unreadable basedir, an image that
// is not a composefs image ([ErrNotComposefs]) or that the structural check
// refuses ([ErrInvalidImage], with what it found), a digest mismatch
// ([ErrDigestMismatch], with both digests), missing privilege
// ([ErrNeedRoot], beside unix.EPERM), a missing kernel feature
// ([*FeatureError]). The kernel's errno stays in the chain for errors.Is.
func Mount(image, target string, opts Options) error {
	digest, err := opts.validate()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(image, os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("composefs image: %w", err)
	}
	defer f.Close()
	return mountFile(f, image, target, &opts, digest, nil)
}

// MountFile is [Mount] for an image that is already open (for reading). It
// does not move the file's offset, and the caller keeps ownership of it.
func MountFile(image *os.File, target string, opts Options) error {
	digest, err := opts.validate()
	if err != nil {
		return err
	}
	if image == nil {
		return fmt.Errorf("%w: nil image file", ErrInvalidOptions)
	}
	return mountFile(image, image.Name(), target, &opts, digest, nil)
}

// MountDetached mounts the image open as image as [MountFile] does, but
// attaches the overlay nowhere: it returns the new mount as a file
// descriptor (fsmount(2)), which its holder attaches with move_mount(2),
// in this mount namespace or, handed to another process, in that one's.
// Until then nothing shows in any mount table, and closing the file
// unmounts it. opts.MountNamespace must be empty (the caller chooses where
// to attach). It needs overlayfs to take the EROFS mount as a detached
// layer (Linux 6.15) or to be configured through the new mount API (6.8);
// on older kernels it returns a [*FeatureError].
func MountDetached(image *os.File, opts Options) (*os.File, error) {
	digest, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if image == nil {
		return nil, fmt.Errorf("%w: nil image file", ErrInvalidOptions)
	}
	if opts.MountNamespace != "" {
		return nil, fmt.Errorf("%w: a detached mount has no mount namespace (attach it where it is wanted)", ErrInvalidOptions)
	}
	mnt := -1
	if err := mountFile(image, image.Name(), "", &opts, digest, &mnt); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(mnt), "composefs:"+image.Name()), nil
}

// Unmount unmounts the composefs mount (or any mount) at target. It fails
// with EBUSY while files under it are open; see [UnmountLazy].
func Unmount(target string) error {
	return unmount(target, 0)
}

// UnmountLazy detaches the mount at target at once and lets the kernel
// finish unmounting when it is no longer busy (MNT_DETACH).
func UnmountLazy(target string) error {
	return unmount(target, unix.MNT_DETACH)
}

func unmount(target string, flags int) error {
	err := unix.Unmount(target, flags)
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("unmounting %s: not a mount point: %w", target, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("unmounting %s: busy (a file under it is open, or a process works in it); close those, or unmount lazily: %w", target, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("unmounting %s: %w: %w", target, ErrNeedRoot, err)
	}
	return fmt.Errorf("unmounting %s: %w", target, err)
}

// mountFile does the work of Mount, MountFile and MountDetached. name is
// the image's path, for messages and the loop device's file name. With
// detached not nil, the overlay is attached nowhere and its mount file
// descriptor is stored there.
func mountFile(f *os.File, name, target string, o *Options, digest []byte, detached *int) error {
	var mntns *os.File
	if detached != nil {
		// No mount point: the caller attaches the mount.
	} else if o.MountNamespace != "" {
		ns, err := openNamespace(o.MountNamespace, unix.CLONE_NEWNS, "mount namespace")
		if err != nil {
			return err
		}
		defer ns.Close()
		mntns = ns
	} else if err := checkDir("mount point", target, false); err != nil {
		return err
	}
	for _, d := range o.Basedirs {
		if err := checkDir("object store (basedir)", d, true); err != nil {
			return err
		}
	}
	if o.UpperDir != "" {
		if err := checkDir("upperdir", o.UpperDir, false); err != nil {
			return err
		}
		if err := checkDir("workdir", o.WorkDir, false); err != nil {
			return err
		}
	}

	// Check the header before the digest: a file that is no composefs
	// image at all deserves that error, not a digest mismatch.
	if _, err := readHeader(f, name); err != nil {
		return err
	}
	src, err := prepareImage(f, name, digest, o)
	if err != nil {
		return err
	}
	if src != f {
		defer src.Close()
	}
	// The flags come from what is mounted, which is what was verified.
	flags, err := readHeader(src, name)
	if err != nil {
		return err
	}

	nsFD := -1
	switch {
	case o.IDMapPath != "":
		ns, err := openNamespace(o.IDMapPath, unix.CLONE_NEWUSER, "idmap: user namespace")
		if err != nil {
			return err
		}
		defer ns.Close()
		nsFD = int(ns.Fd())
	case o.IDMapFile != nil:
		if err := checkNamespace(o.IDMapFile, unix.CLONE_NEWUSER, "idmap: user namespace"); err != nil {
			return err
		}
		nsFD = int(o.IDMapFile.Fd())
		defer runtime.KeepAlive(o.IDMapFile)
	}

	verity := decideVerity(o)

	erofsMnt, err := mountErofs(src, name, flags&headerFlagACL != 0, nsFD, o)
	if err != nil {
		return err
	}
	defer unix.Close(erofsMnt)
	c := ovlConfig{lowerFD: erofsMnt, o: o, verity: verity, target: target, mntns: mntns, detached: detached}
	return mountOverlay(&c)
}

// checkDir checks that path is a directory, and when read is set that it
// can be listed, with an error that says what the directory was for.
func checkDir(what, path string, read bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		hint := ""
		if what == "object store (basedir)" {
			hint = ": give the directory the image's objects were stored in (mkcomposefs --digest-store)"
		}
		if errors.Is(err, os.ErrNotExist) {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s %s does not exist%s: %w", what, path, hint, err)
		}
		return fmt.Errorf("%s%s: %w", what, hint, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, path)
	}
	if read {
		d, err := os.Open(path)
		if err == nil {
			_, err = d.Readdirnames(1)
			d.Close()
			if err == io.EOF {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s cannot be read: %w", what, path, err)
		}
	}
	return nil
}

// readHeader checks the composefs header and the EROFS superblock magic of
// f, and returns the header's flags.
func readHeader(f *os.File, name string) (uint32, error) {
	var buf [erofsSuperOff + 4]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("reading composefs image %s: %w", name, err)
	}
	if n < headerSize {
		return 0, fmt.Errorf("%s: %w: only %d bytes long", name, ErrNotComposefs, n)
	}
	if m := binary.LittleEndian.Uint32(buf[0:]); m != composefsMagic {
		return 0, fmt.Errorf("%s: %w: no composefs magic at its start (found %#08x, want %#08x); build images with mkcomposefs", name, ErrNotComposefs, m, uint32(composefsMagic))
	}
	if n < len(buf) || binary.LittleEndian.Uint32(buf[erofsSuperOff:]) != erofsSuperMagic {
		return 0, fmt.Errorf("%s: %w: composefs header but no EROFS superblock (truncated or damaged image?)", name, ErrNotComposefs)
	}
	return binary.LittleEndian.Uint32(buf[8:]), nil
}

// nsGetNSType is NS_GET_NSTYPE, _IO(0xb7, 0x3): the type of the namespace
// a file descriptor refers to (Linux 4.11).
const nsGetNSType = 0xb703

// openNamespace opens the namespace file path and checks that it is a
// namespace of type nstype (a CLONE_NEW* flag). what names it in errors.
func openNamespace(path string, nstype int, what string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkNamespace(f, nstype, what); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkNamespace checks that f is a namespace of type nstype.
func checkNamespace(f *os.File, nstype int, what string) error {
	want := map[int]string{unix.CLONE_NEWUSER: "user", unix.CLONE_NEWNS: "mnt"}[nstype]
	t, err := unix.IoctlRetInt(int(f.Fd()), nsGetNSType)
	switch {
	case err == nil && t == nstype:
		return nil
	case err == nil:
		return fmt.Errorf("%s: %s is a namespace of another type (give /proc/PID/ns/%s)", what, f.Name(), want)
	case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s: %s is not a namespace (give /proc/PID/ns/%s): %w", what, f.Name(), want, err)
	}
	return fmt.Errorf("%s: %s: %w", what, f.Name(), err)
}

// inNamespace runs fn in the mount namespace ns, or in the caller's when
// ns is nil. Joining a mount namespace takes a thread of its own (one that
// shares no file system information with the others), which is thrown
// away afterwards; fn must do its work on the calling goroutine.
func inNamespace(ns *os.File, fn func() error) error {
	if ns == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread, which Go never ends: it would stay in the
			// other namespace, and /proc/self (which follows it) with it.
			// Hold it, so that another goroutine can't run on it, and
			// enter the namespace from another thread.
			errc <- inNamespace(ns, fn)
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("entering mount namespace: unshare: %w", err)
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w: %w", ErrNeedRoot, err)
			}
			errc <- fmt.Errorf("entering mount namespace %s: %w", ns.Name(), err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// fdPath names an open file by its /proc/self/fd link, which the kernel
// resolves to the file itself (even a memfd).
func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// mountErofs mounts the image in src as EROFS and returns the detached
// mount's file descriptor, idmapped with the user namespace nsFD when that
// is not -1. When the kernel cannot mount a file (ENOTBLK) it goes through
// a loop device.
func mountErofs(src *os.File, name string, acl bool, nsFD int, o *Options) (int, error) {
	defer runtime.KeepAlive(src)
	if !o.forceLoop {
		mnt, err := erofsFsmount(fdPath(src), acl, nsFD)
		if err == nil {
			return mnt, nil
		}
		if !errors.Is(err, unix.ENOTBLK) {
			return -1, err
		}
		if !isMemfd(src) {
			o.notice("this kernel cannot mount EROFS from a file (file-backed mounts need Linux 6.12 and CONFIG_EROFS_FS_BACKED_BY_FILE); using a loop device")
		}
	}
	loop, err := attachLoop(src, name)
	if err != nil {
		return -1, err
	}
	// The EROFS superblock keeps the device open; being auto-clearing,
	// the loop device goes away when the last mount using it does.
	defer loop.Close()
	mnt, err := erofsFsmount(loop.Name(), acl, nsFD)
	if err != nil {
		detachLoop(loop)
		return -1, err
	}
	return mnt, nil
}

// isMemfd tells whether f is a memfd (its /proc link starts "/memfd:").
func isMemfd(f *os.File) bool {
	l, err := os.Readlink(fdPath(f))
	return err == nil && strings.HasPrefix(l, "/memfd:")
}

// erofsFsmount mounts source (a file or block device path) as EROFS with
// the new mount API and returns the detached mount.
func erofsFsmount(source string, acl bool, nsFD int) (mnt int, retErr error) {
	fsfd, err := unix.Fsopen("erofs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fsopenError("erofs", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
		return -1, contextError(fsfd, "EROFS: setting source", err)
	}
	if err := unix.FsconfigSetFlag(fsfd, "ro"); err != nil {
		return -1, contextError(fsfd, "EROFS: setting ro", err)
	}
	if !acl {
		if err := unix.FsconfigSetFlag(fsfd, "noacl"); err != nil {
			return -1, contextError(fsfd, "EROFS: setting noacl", err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, contextError(fsfd, "mounting the EROFS image", err)
	}
	mnt, err = unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return -1, contextError(fsfd, "mounting the EROFS image (fsmount)", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(mnt)
		}
	}()
	if nsFD >= 0 {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(nsFD)}
		if err := unix.MountSetattr(mnt, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			switch {
			case errors.Is(err, unix.ENOSYS):
				return -1, &FeatureError{Feature: "mount_setattr (idmapped mounts)", Since: "5.12", Err: err}
			case errors.Is(err, unix.EINVAL):
				return -1, fmt.Errorf("idmap: %w", &FeatureError{Feature: "idmapped EROFS mounts", Since: "5.19", Err: err})
			case errors.Is(err, unix.EPERM):
				return -1, fmt.Errorf("idmap: refused: the user namespace must not be the initial one, and idmapping needs CAP_SYS_ADMIN over it: %w", err)
			}
			return -1, fmt.Errorf("idmap: %w", err)
		}
	}
	return mnt, nil
}

// ovlConfig is what the overlay mount is made of.
type ovlConfig struct {
	lowerFD   int    // the EROFS mount, as a layer file descriptor, or -1
	lowerPath string // the EROFS mount, as a path, when lowerFD is -1
	o         *Options
	verity    bool
	target    string
	mntns     *os.File // the mount namespace of target, or nil
	detached  *int     // when not nil, receives the overlay's mount fd instead of attaching it
}

// fallbackError wraps an EINVAL from an overlayfs configuration step that
// an older kernel gives for something it lacks, so the caller tries the
// next, older way.
type fallbackError struct{ err error }

func (e *fallbackError) Error() string { return e.err.Error() }
func (e *fallbackError) Unwrap() error { return e.err }

// mountOverlay mounts overlayfs on c.target (or detached) with the EROFS
// mount c.lowerFD as its lower layer and the basedirs as data-only layers.
func mountOverlay(c *ovlConfig) error {
	o, erofsMnt := c.o, c.lowerFD
	var first *fallbackError
	if !o.forceTmpdir && !o.forceLegacy {
		// Linux 6.15 takes a detached mount as a layer (6.13 takes layer
		// file descriptors); the EROFS mount then never shows anywhere.
		err := overlayFsmount(c)
		if !errors.As(err, &first) {
			return err
		}
	}

	// Attach the EROFS mount to a private temporary directory for as long
	// as it takes to set up the overlay, as upstream does.
	dir, err := os.MkdirTemp("", ".gocfs-erofs-")
	if err != nil {
		return fmt.Errorf("temporary directory for the EROFS mount: %w", err)
	}
	defer os.Remove(dir)
	if err := unix.MoveMount(erofsMnt, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching the EROFS mount to %s: %w", dir, err)
	}
	// Once the overlay holds it, the EROFS mount can go from the tree.
	defer unix.Unmount(dir, unix.MNT_DETACH)
	c.lowerFD, c.lowerPath = -1, dir
	if !o.forceLegacy {
		err := overlayFsmount(c)
		var fe *fallbackError
		if !errors.As(err, &fe) {
			return err
		}
		if first == nil {
			first = fe
		}
	}
	if c.detached != nil {
		var kerr error = unix.EINVAL
		if first != nil {
			kerr = first.err
		}
		return &FeatureError{Feature: "overlayfs configured through the new mount API (for a detached mount)", Since: "6.8", Err: kerr}
	}
	err = overlayLegacy(c)
	if err != nil && first != nil && errors.Is(err, unix.EINVAL) {
		// Every way failed alike: the new API's error carries the
		// kernel's explanation.
		return first.err
	}
	return err
}

// overlayFsmount mounts the overlay with the new mount API. A
// *fallbackError means this kernel needs an older way.
func overlayFsmount(c *ovlConfig) error {
	o := c.o
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fsopenError("overlay", err)
	}
	defer unix.Close(fsfd)

	// An overlayfs that takes any key only forwards the options to its
	// legacy parser, which validates nothing here: use mount(2) then.
	if unix.FsconfigSetString(fsfd, "unsupported", "unsupported") == nil {
		return &fallbackError{errors.New("overlayfs lacks new mount API support")}
	}
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return contextError(fsfd, "overlayfs: setting "+key, err)
		}
		return nil
	}
	// fallback marks an error that an older kernel gives for what it
	// lacks.
	fallback := func(err error) error {
		if errors.Is(err, unix.EINVAL) {
			return &fallbackError{err}
		}
		return err
	}
	for _, kv := range [][2]string{{"source", mountSource}, {"metacopy", "on"}, {"redirect_dir", "on"}} {
		if err := set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if c.verity {
		if err := set("verity", "require"); err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			if o.Verity == VerityRequire {
				return &FeatureError{Feature: "the overlayfs verity option", Since: "6.6", Err: err}
			}
			o.notice("tryverity: mounting without fs-verity checks: this kernel's overlayfs lacks the verity option (Linux 6.6)")
			c.verity = false
		}
	}
	if c.lowerFD >= 0 {
		if err := unix.FsconfigSetFd(fsfd, "lowerdir+", c.lowerFD); err != nil {
			err = contextError(fsfd, "overlayfs: setting lowerdir+ to the EROFS mount", err)
			// Before 6.13 layers are no file descriptors, and 6.13 and
			// 6.14 take no mount file descriptor (EBADF).
			if errors.Is(err, unix.EBADF) {
				return &fallbackError{err}
			}
			return fallback(err)
		}
	} else if err := set("lowerdir+", c.lowerPath); err != nil {
		return fallback(err)
	}
	for _, d := range o.Basedirs {
		if err := set("datadir+", d); err != nil {
			return fallback(err)
		}
	}
	if o.UpperDir != "" {
		if err := set("upperdir", o.UpperDir); err != nil {
			return err
		}
		if err := set("workdir", o.WorkDir); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		err = contextError(fsfd, "mounting overlayfs", err)
		if c.lowerFD >= 0 {
			// Before 6.15 a detached mount is no layer.
			return fallback(err)
		}
		return err
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, o.mountAttrs())
	if err != nil {
		return contextError(fsfd, "mounting overlayfs (fsmount)", err)
	}
	if c.detached != nil {
		*c.detached = mnt
		return nil
	}
	defer unix.Close(mnt)
	return inNamespace(c.mntns, func() error {
		err := unix.MoveMount(mnt, "", unix.AT_FDCWD, c.target, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS)
		if err != nil {
			return moveError(c.target, err)
		}
		return nil
	})
}

// overlayLegacy mounts the overlay with mount(2), for kernels without
// "lowerdir+" (before 6.8): first with data-only layers ("::", 6.5), then
// with the basedirs as ordinary lower layers (the image's root directory is
// opaque, so they do not show). Under VerityTry it drops verity=require when
// the kernel refuses it.
func overlayLegacy(c *ovlConfig) error {
	o := c.o
	if c.mntns != nil {
		return &FeatureError{Feature: `overlayfs "lowerdir+" (to mount into another mount namespace)`, Since: "6.8", Err: unix.EINVAL}
	}
	flags := o.mountFlags()
	build := func(sep string, verity bool) string {
		var b strings.Builder
		b.WriteString("metacopy=on,redirect_dir=on,lowerdir=")
		b.WriteString(escapeOverlayPath(c.lowerPath))
		for _, d := range o.Basedirs {
			b.WriteString(sep)
			b.WriteString(escapeOverlayPath(d))
		}
		if o.UpperDir != "" {
			b.WriteString(",upperdir=" + escapeOverlayPath(o.UpperDir))
			b.WriteString(",workdir=" + escapeOverlayPath(o.WorkDir))
		}
		if verity {
			b.WriteString(",verity=require")
		}
		return b.String()
	}
	type variant struct {
		sep    string
		verity bool
		notice string
	}
	const noDataOnly = "this kernel's overlayfs lacks data-only layers (Linux 6.5); the object stores are ordinary lower layers"
	const noVerity = "tryverity: mounting without fs-verity checks: this kernel's overlayfs lacks the verity option (Linux 6.6)"
	variants := []variant{{"::", c.verity, ""}, {":", c.verity, noDataOnly}}
	if c.verity && o.Verity == VerityTry {
		variants = append(variants, variant{"::", false, noVerity}, variant{":", false, noDataOnly + "; " + noVerity})
	}
	var err error
	for i, v := range variants {
		silent := uintptr(0)
		if i < len(variants)-1 {
			silent = unix.MS_SILENT
		}
		e := unix.Mount(mountSource, c.target, "overlay", flags|silent, build(v.sep, v.verity))
		if e == nil {
			if v.notice != "" {
				o.notice("%s", v.notice)
			}
			return nil
		}
		if err == nil {
			err = e
		}
		if !errors.Is(e, unix.EINVAL) {
			err = e
			break
		}
	}
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("mounting overlayfs: %w: %w", ErrNeedRoot, err)
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return moveError(c.target, err)
	case errors.Is(err, unix.EINVAL) && c.verity:
		return fmt.Errorf("overlayfs refused the mount; with verity=require that may mean it lacks the verity option (Linux 6.6): %w", err)
	}
	return fmt.Errorf("mounting overlayfs: %w", err)
}

// mountOptionFlags pairs each mount option with its MOUNT_ATTR_* flag (new
// mount API) and its MS_* flag (mount(2)).
func (o *Options) mountOptionFlags() []struct {
	on   bool
	attr int
	flag uintptr
} {
	return []struct {
		on   bool
		attr int
		flag uintptr
	}{
		{o.ReadOnly || o.UpperDir == "", unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY},
		{!o.AllowSetuid, unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID},
		{!o.AllowDevices, unix.MOUNT_ATTR_NODEV, unix.MS_NODEV},
		{o.NoExec, unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC},
		{o.NoAtime, unix.MOUNT_ATTR_NOATIME, unix.MS_NOATIME},
		{o.StrictAtime, unix.MOUNT_ATTR_STRICTATIME, unix.MS_STRICTATIME},
		{o.NoDiratime, unix.MOUNT_ATTR_NODIRATIME, unix.MS_NODIRATIME},
	}
}

// mountAttrs returns the MOUNT_ATTR_* flags of the overlay mount.
func (o *Options) mountAttrs() int {
	var attr int
	for _, f := range o.mountOptionFlags() {
		if f.on {
			attr |= f.attr
		}
	}
	return attr
}

// mountFlags returns the MS_* flags of the overlay mount, for mount(2).
func (o *Options) mountFlags() uintptr {
	var flags uintptr
	for _, f := range o.mountOptionFlags() {
		if f.on {
			flags |= f.flag
		}
	}
	return flags
}

// escapeOverlayPath escapes a path for overlayfs's option parser, which
// splits options on ',' and layers on ':', and takes a backslash as an
// escape.
func escapeOverlayPath(p string) string {
	if !strings.ContainsAny(p, `\,:`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '\\' || c == ',' || c == ':' {
			b.WriteByte('\\')
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// moveError explains an error from putting the overlay on target.
func moveError(target string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("mount point %s does not exist: %w", target, err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("mount point %s is not a directory: %w", target, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("mounting on %s: %w: %w", target, ErrNeedRoot, err)
	}
	return fmt.Errorf("mounting on %s: %w", target, err)
}

// fsopenError explains an error from fsopen(2).
func fsopenError(fstype string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return &FeatureError{Feature: "the new mount API (fsopen)", Since: "5.2", Err: err}
	case errors.Is(err, unix.ENODEV):
		return &FeatureError{Feature: "the " + fstype + " file system (load its module: modprobe " + fstype + ")", Since: map[string]string{"erofs": "5.4", "overlay": "3.18"}[fstype], Err: err}
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %w", ErrNeedRoot, err)
	}
	return fmt.Errorf("fsopen %s: %w", fstype, err)
}

// contextError wraps err from a configuration step of the file system
// context fsfd, adding the messages the kernel logged to it.
func contextError(fsfd int, what string, err error) error {
	msgs := contextLog(fsfd)
	if errors.Is(err, unix.EPERM) {
		err = fmt.Errorf("%w: %w", ErrNeedRoot, err)
	}
	if msgs == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w (kernel: %s)", what, err, msgs)
}

// contextLog reads the messages queued on a file system context.
func contextLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		m := strings.TrimSpace(string(buf[:n]))
		// Each message starts with its level: "e ", "w " or "i ".
		if len(m) > 2 && m[1] == ' ' {
			m = m[2:]
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}
