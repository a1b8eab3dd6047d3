package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
)

// ErrNoKarg reports a kernel command line without a composefs argument,
// ErrNoImage one whose images are none of them in the repository, and
// ErrInsecureRepo a repository without fs-verity named by a secure karg.
var (
	ErrNoKarg       = errors.New("boot: no composefs= or composefs.digest= argument on the kernel command line")
	ErrNoImage      = errors.New("boot: no image named on the kernel command line is in the repository")
	ErrInsecureRepo = errors.New("boot: the repository has no fs-verity")
)

// SetupRoot mounts the composefs image the kernel command line names as
// the new root file system, as composefs-setup-root does in an initramfs:
//
//  1. read the configuration and the composefs kargs;
//  2. open the repository Sysroot/composefs and mount the image of the
//     first karg whose image is there, with overlayfs "verity=require"
//     (unless the karg is insecure) and the image's own digest checked;
//  3. with [root] transient, put a tmpfs-backed overlay over it;
//  4. bind the sysroot at /sysroot inside it (when the image has that
//     directory);
//  5. prepare /etc and /var as the configuration says, with the state in
//     Sysroot/state/deploy/DIGEST;
//  6. replace the sysroot by the new root (or leave it at Target).
//
// Any failure is a *StepError naming the step, and everything mounted
// before it is unmounted again.
func SetupRoot(o Options) (_ *Result, retErr error) {
	s, err := newSetup(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			s.undo()
		}
		s.removeWork()
	}()
	res, err := s.mountImage()
	if err != nil {
		return nil, err
	}
	if err := s.prepare(res.Karg); err != nil {
		return nil, err
	}
	if err := s.switchRoot(); err != nil {
		return nil, err
	}
	res.Target = s.target
	return res, nil
}

// setup is one run of SetupRoot.
type setup struct {
	o      Options
	cfg    Config
	kargs  []Karg
	target string
	// work is a private directory beside the target for the mount points
	// of the staging root and the tmpfs upper layers; root is where the
	// new root is built (target itself when it is not the sysroot).
	work, root string
	mounts     []string // mounted, in order
	tmpN       int
}

// newSetup reads the configuration and the kargs and makes the work
// directory.
func newSetup(o Options) (*setup, error) {
	if o.Sysroot == "" {
		o.Sysroot = DefaultSysroot
	}
	if o.Target == "" {
		o.Target = o.Sysroot
	}
	if o.ConfigPath == "" {
		o.ConfigPath = DefaultConfigPath
	}
	s := &setup{o: o, target: filepath.Clean(o.Target)}
	if err := s.readConfig(); err != nil {
		return nil, stepErr(StepConfig, err)
	}
	if err := s.readKargs(); err != nil {
		return nil, stepErr(StepCmdline, err)
	}
	for _, p := range []string{o.Sysroot, s.target} {
		if err := optionSafe(p); err != nil {
			return nil, stepErr(StepImage, err)
		}
	}
	work, err := os.MkdirTemp(filepath.Dir(s.target), ".gocfs-setup-root-")
	if err != nil {
		return nil, stepErr(StepImage, fmt.Errorf("making a work directory: %w", err))
	}
	s.work, s.root = work, s.target
	if s.replacing() {
		s.root = filepath.Join(work, "root")
		if err := os.Mkdir(s.root, 0o755); err != nil {
			s.removeWork()
			return nil, stepErr(StepImage, err)
		}
	}
	return s, nil
}

// replacing says whether the new root replaces the sysroot.
func (s *setup) replacing() bool { return s.target == filepath.Clean(s.o.Sysroot) }

func (s *setup) notice(format string, a ...any) {
	if s.o.Notice != nil {
		s.o.Notice(fmt.Sprintf(format, a...))
	}
}

func (s *setup) readConfig() error {
	if s.o.Config != nil {
		s.cfg = *s.o.Config
		return s.cfg.Check()
	}
	cfg, unknown, err := ReadConfig(s.o.ConfigPath)
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		s.notice("warning: %s: unknown keys ignored: %s", s.o.ConfigPath, strings.Join(unknown, ", "))
	}
	s.cfg = cfg
	return nil
}

func (s *setup) readKargs() error {
	cmdline := s.o.Cmdline
	if cmdline == "" {
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return err
		}
		cmdline = string(b)
	}
	kargs, err := ParseCmdline(cmdline)
	if err != nil {
		return err
	}
	if len(kargs) == 0 {
		return ErrNoKarg
	}
	s.kargs = kargs
	return nil
}

// mountImage opens the repository and mounts the first karg's image that
// it has at s.root.
func (s *setup) mountImage() (*Result, error) {
	dir := filepath.Join(s.o.Sysroot, RepoDir)
	r, err := repo.Open(dir, repo.Options{ReadOnly: true, Notice: s.o.Notice})
	if err != nil {
		return nil, stepErr(StepRepository, err)
	}
	defer r.Close()
	var tried []string
	for _, k := range s.kargs {
		if !k.Insecure && !r.Secure() {
			return nil, stepErr(StepRepository, fmt.Errorf("%w: %s has no fs-verity on meta.json, so its objects are not verity-protected and %s cannot be enforced (make the repository on a file system with fs-verity, or boot with the insecure karg %s)",
				ErrInsecureRepo, dir, k, Karg{Digest: k.Digest, Insecure: true, Version: k.Version}))
		}
		opts := mount.Options{Method: mount.Kernel, Verity: mount.VerityRequire, AllowDevices: true, AllowSetuid: true, Notice: s.o.Notice}
		if k.Insecure {
			opts.Verity = mount.VerityOff
			s.notice("WARNING: INSECURE BOOT: the karg %s is marked insecure (\"?\"): mounting image %s WITHOUT fs-verity; the content of its files is NOT verified", k, k.Digest)
		}
		_, err := r.MountImage(k.Digest, s.root, opts)
		if errors.Is(err, repo.ErrNotFound) {
			s.notice("image %s of %s is not in %s; trying the next karg", k.Digest, k, dir)
			tried = append(tried, k.Digest.Hex())
			continue
		}
		if err != nil {
			return nil, stepErr(StepImage, fmt.Errorf("image %s: %w", k.Digest, err))
		}
		s.mounts = append(s.mounts, s.root)
		return &Result{Karg: k, Verity: !k.Insecure, Config: s.cfg}, nil
	}
	return nil, stepErr(StepImage, fmt.Errorf("%w %s (tried %s)", ErrNoImage, dir, strings.Join(tried, ", ")))
}
