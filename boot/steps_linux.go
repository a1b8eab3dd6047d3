package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// prepare makes the root transient if asked, binds the sysroot into it and
// prepares /etc and /var.
func (s *setup) prepare(k Karg) error {
	if s.cfg.Root.Transient {
		if err := s.transient(s.root); err != nil {
			return stepErr(StepRoot, err)
		}
	}
	if err := s.bindSysroot(); err != nil {
		return stepErr(StepSysroot, err)
	}
	state := filepath.Join(s.o.Sysroot, StateDir, k.Digest.Hex())
	if err := s.prepareDir("etc", s.cfg.EtcMode(), state); err != nil {
		return stepErr(StepEtc, err)
	}
	if err := s.prepareDir("var", s.cfg.VarMode(), state); err != nil {
		return stepErr(StepVar, err)
	}
	return nil
}

// bindSysroot bind-mounts the sysroot (not what is mounted below it) at
// /sysroot in the new root, when the image has that directory.
func (s *setup) bindSysroot() error {
	dst := filepath.Join(s.root, "sysroot")
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := realDir(dst, "the image's /sysroot"); err != nil {
		return err
	}
	return s.mount(s.o.Sysroot, dst, "", unix.MS_BIND, "")
}

// prepareDir prepares the directory name of the new root as mode says.
func (s *setup) prepareDir(name string, mode MountMode, state string) error {
	if mode == ModeNone {
		return nil
	}
	dir := filepath.Join(s.root, name)
	if err := realDir(dir, "the image's /"+name); err != nil {
		return err
	}
	if mode == ModeTransient {
		return s.transient(dir)
	}
	if err := s.stateDir(state); err != nil {
		return err
	}
	sdir := filepath.Join(state, name)
	if err := ensureDir(sdir, 0o755); err != nil {
		return err
	}
	if mode == ModeBind {
		return s.mount(sdir, dir, "", unix.MS_BIND, "")
	}
	// The upper directory's mode shows at the top of the merged view:
	// 0755, so that unprivileged processes can use it.
	upper, work := filepath.Join(sdir, "upper"), filepath.Join(sdir, "work")
	if err := ensureDir(upper, 0o755); err != nil {
		return err
	}
	if err := ensureDir(work, 0o700); err != nil {
		return err
	}
	return s.overlay(dir, upper, work)
}

// stateDir checks that the image's state directory and the directories
// above it in the sysroot are directories, not links that could lead
// the mounts out of the sysroot.
func (s *setup) stateDir(state string) error {
	p := s.o.Sysroot
	for _, name := range append(strings.Split(StateDir, "/"), filepath.Base(state)) {
		p = filepath.Join(p, name)
		if err := realDir(p, "the state directory"); err != nil {
			return fmt.Errorf("%w (an image's state directory is made when it is deployed, e.g. by gocfs oci prepare-boot)", err)
		}
	}
	return nil
}

// transient mounts a writable overlay over dir whose upper layer is on a
// fresh tmpfs. The tmpfs is mounted in the work directory only for as long
// as the overlay is being set up; the overlay keeps it afterwards.
func (s *setup) transient(dir string) error {
	s.tmpN++
	t := filepath.Join(s.work, "tmpfs"+strconv.Itoa(s.tmpN))
	if err := os.Mkdir(t, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", t, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs at %s: %w", t, err)
	}
	defer unix.Unmount(t, unix.MNT_DETACH)
	upper, work := filepath.Join(t, "upper"), filepath.Join(t, "work")
	if err := os.Mkdir(upper, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return err
	}
	return s.overlay(dir, upper, work)
}

// overlay mounts a writable overlay over dir.
func (s *setup) overlay(dir, upper, work string) error {
	for _, p := range []string{upper, work} {
		if err := optionSafe(p); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
	return s.mount("overlay", dir, "overlay", 0, opts)
}

// mount mounts and remembers the mount for undo.
func (s *setup) mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		what := fstype
		if flags&unix.MS_BIND != 0 {
			what = "bind mount of " + src
		}
		return fmt.Errorf("%s on %s: %w", what, dst, err)
	}
	s.mounts = append(s.mounts, dst)
	return nil
}

// switchRoot puts the new root at the sysroot: the sysroot is detached
// (it stays visible at /sysroot inside the new root) and the new root
// moved there. When the move fails, the sysroot is put back.
func (s *setup) switchRoot() error {
	if !s.replacing() {
		return nil
	}
	if err := unix.Unmount(s.o.Sysroot, unix.MNT_DETACH); err != nil {
		return stepErr(StepSwitch, fmt.Errorf("detaching %s: %w", s.o.Sysroot, err))
	}
	if err := unix.Mount(s.root, s.o.Sysroot, "", unix.MS_MOVE, ""); err != nil {
		// Put the old sysroot back from its bind mount in the new root.
		if rerr := unix.Mount(filepath.Join(s.root, "sysroot"), s.o.Sysroot, "", unix.MS_MOVE, ""); rerr != nil {
			err = fmt.Errorf("%w (and putting %s back failed: %v)", err, s.o.Sysroot, rerr)
		}
		return stepErr(StepSwitch, fmt.Errorf("moving %s to %s: %w", s.root, s.o.Sysroot, err))
	}
	// A move takes the topmost mount only: with [root] transient the
	// image's own mount stays at s.root, beneath the overlay that moved
	// (which holds it as its lower layer). Detach it from there.
	for unix.Unmount(s.root, unix.MNT_DETACH) == nil {
	}
	s.mounts = nil
	return nil
}

// undo unmounts what setup mounted, newest first.
func (s *setup) undo() {
	for i := len(s.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(s.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			s.notice("warning: unmounting %s: %v", s.mounts[i], err)
		}
	}
	s.mounts = nil
}

// removeWork removes the work directory and the mount points in it. It
// removes nothing but empty directories: should an unmount have failed,
// what is still mounted there stays untouched.
func (s *setup) removeWork() {
	if s.work == "" {
		return
	}
	names := []string{"root"}
	for i := 1; i <= s.tmpN; i++ {
		names = append(names, "tmpfs"+strconv.Itoa(i))
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(s.work, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.notice("warning: removing %s: %v", filepath.Join(s.work, n), err)
		}
	}
	if err := os.Remove(s.work); err != nil {
		s.notice("warning: removing %s: %v", s.work, err)
	}
	s.work = ""
}

// realDir checks that path is a directory, not a link to one.
func realDir(path, what string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory (%s)", what, path, fi.Mode().Type())
	}
	return nil
}

// ensureDir makes the directory path unless it is one already.
func ensureDir(path string, perm os.FileMode) error {
	err := os.Mkdir(path, perm)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	return realDir(path, "the state directory")
}

// optionSafe refuses a path overlayfs's option string cannot carry.
func optionSafe(p string) error {
	for _, c := range p {
		if c == ',' || c == ':' || c == '\\' {
			return fmt.Errorf("path %q has a comma, colon or backslash, which overlayfs options cannot carry", p)
		}
	}
	return nil
}
