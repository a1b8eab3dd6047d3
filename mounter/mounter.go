// Package mounter mounts a composefs image the best way this system
// allows: with the kernel (package mount: overlayfs over EROFS) when it
// can, and with FUSE (package fuse, served from this process) when the
// caller is not root or the kernel lacks what a composefs mount needs. It
// is the one place that makes this choice; the gocfs command line, the
// repository (repo.Repo.Mount) and the OCI mounts all go through it.
//
// Usage:
//
//	m, err := mounter.Mount("/composefs/images/app.cfs", "/run/app", mount.Options{
//		Basedirs: []string{"/composefs/objects"},
//		Notice:   func(msg string) { log.Print(msg) },
//	})
//	if err != nil {
//		return err
//	}
//	defer m.Unmount()
//	m.Wait() // a FUSE mount lives as long as this process serves it
//
// # The choice
//
// mount.Options.Method says how: [mount.Kernel] and [mount.FUSE] force
// one; [mount.Auto] (the zero value) serves the image with FUSE at once
// when the process is not root, and otherwise tries the kernel first and
// turns to FUSE when the kernel mount fails for lack of a feature
// (*mount.FeatureError: no overlayfs data-only layers, no EROFS…) or of
// privilege (mount.ErrNeedRoot: root without CAP_SYS_ADMIN, as in a
// container), saying why through Options.Notice. Options only the kernel
// mount has (upperdir, workdir, idmap, a mount namespace) rule FUSE out.
// Any other failure is returned as it is: a FUSE mount would fail alike,
// or must not be made (a digest mismatch, an image the check refuses).
//
// # What every mount does
//
// Both ways check the image before the kernel or the server reads it: its
// fs-verity digest (Options.ExpectedDigest), its structure (package verify,
// unless Options.NoVerify), on the very bytes that are then mounted. Both
// take the one mount.VerityMode, whose zero value checks what the system
// can check, and both mount nodev and nosuid unless Options.AllowDevices
// or Options.AllowSetuid say otherwise: the zero Options are the safe
// ones. See packages mount and fuse for the details of each.
package mounter

import (
	"errors"
	"fmt"
	"os"

	"github.com/gocfs/gocfs/fuse"
	"github.com/gocfs/gocfs/mount"
)

// Mounted is a composefs mount made by [Mount].
type Mounted struct {
	// Target is the mount point.
	Target string
	// Method is how the image was mounted: mount.Kernel or mount.FUSE.
	Method mount.Method
	// Server is the FUSE server that serves the mount from this process,
	// which must stay alive as long as the mount is used; nil for a kernel
	// mount, and for a FUSE mount made by Options.FUSE.Start.
	Server *fuse.Server
}

// Wait waits until the mount is gone when this process serves it (FUSE),
// and returns at once otherwise.
func (m *Mounted) Wait() {
	if m.Server != nil {
		m.Server.Wait()
	}
}

// Unmount unmounts the mount; it fails (EBUSY) while files under it are
// open. For a FUSE mount served here it also waits for the server to stop.
func (m *Mounted) Unmount() error {
	if m.Server != nil {
		return m.Server.Unmount()
	}
	if m.Method == mount.FUSE {
		return fuse.Unmount(m.Target, false) // a user's own FUSE mount, through fusermount3
	}
	return mount.Unmount(m.Target)
}

// The two ways of mounting; tests replace them.
var (
	kernelMount = mount.MountFile
	fuseMount   = fuse.MountFile
	isRoot      = func() bool { return os.Geteuid() == 0 }
)

// Mount mounts the composefs image at the path image on target, an existing
// directory, with the kernel or with FUSE as the package documentation
// says. On error nothing is left mounted; the error says what to fix (the
// caller adds which mount it was, as with packages mount and fuse).
func Mount(image, target string, opts mount.Options) (*Mounted, error) {
	f, err := os.Open(image)
	if err != nil {
		return nil, fmt.Errorf("composefs image: %w", err)
	}
	defer f.Close()
	return MountFile(f, target, opts)
}

// MountFile is [Mount] for an image that is already open for reading; the
// caller keeps ownership of it. f.Name() is its name in messages, and the
// path Options.FUSE.Start gets.
func MountFile(f *os.File, target string, opts mount.Options) (*Mounted, error) {
	if _, err := opts.Validate(); err != nil {
		return nil, err
	}
	method := opts.Method
	if method == mount.Auto && opts.KernelOnly() == "" && !isRoot() {
		notice(&opts, "not root: serving the image with FUSE")
		method = mount.FUSE
	}
	if method == mount.FUSE {
		return mountFUSE(f, target, opts)
	}
	err := kernelMount(f, target, opts)
	if err == nil {
		return &Mounted{Target: target, Method: mount.Kernel}, nil
	}
	if method == mount.Kernel || opts.KernelOnly() != "" || !fallBack(err) {
		return nil, err
	}
	notice(&opts, "no kernel mount (%v): serving the image with FUSE instead", err)
	return mountFUSE(f, target, opts)
}

// fallBack tells whether a kernel mount's error calls for FUSE: the kernel
// lacks a feature, or the process the privilege.
func fallBack(err error) bool {
	var fe *mount.FeatureError
	return errors.As(err, &fe) || errors.Is(err, mount.ErrNeedRoot)
}

// mountFUSE serves the image with FUSE: from this process, or through
// opts.FUSE.Start.
func mountFUSE(f *os.File, target string, opts mount.Options) (*Mounted, error) {
	opts.Method = mount.FUSE
	if start := opts.FUSE.Start; start != nil {
		if err := start(f.Name(), target, opts); err != nil {
			return nil, err
		}
		return &Mounted{Target: target, Method: mount.FUSE}, nil
	}
	srv, err := fuseMount(f, target, opts)
	if err != nil {
		return nil, err
	}
	return &Mounted{Target: target, Method: mount.FUSE, Server: srv}, nil
}

func notice(o *mount.Options, format string, a ...any) {
	if o.Notice != nil {
		o.Notice(fmt.Sprintf(format, a...))
	}
}
