package boot

import (
	"fmt"
)

// DefaultSysroot is where the initramfs mounts the root file system's
// device, and where setup-root puts the new root.
const DefaultSysroot = "/sysroot"

// RepoDir is the repository's directory under the sysroot, and StateDir
// the directory of each image's /etc and /var state (StateDir/DIGEST).
const (
	RepoDir  = "composefs"
	StateDir = "state/deploy"
)

// Options say what SetupRoot does. The zero value boots as
// composefs-setup-root does: the karg from /proc/cmdline, the repository
// in /sysroot/composefs, the configuration from DefaultConfigPath, the new
// root replacing /sysroot.
type Options struct {
	// Sysroot is the mounted root file system holding the repository
	// (DefaultSysroot when empty).
	Sysroot string
	// Cmdline is the kernel command line; /proc/cmdline when empty.
	Cmdline string
	// ConfigPath is the configuration file (DefaultConfigPath when empty);
	// Config, when not nil, is used instead.
	ConfigPath string
	Config     *Config
	// Target is where the new root is mounted. Empty (or Sysroot) means
	// the new root replaces the sysroot, which stays visible inside it at
	// /sysroot; any other directory is for testing and leaves the sysroot
	// where it is.
	Target string
	// Notice receives warnings (an insecure karg, unknown configuration
	// keys, a karg whose image is not there); nil discards them.
	Notice func(msg string)
}

// Result says what SetupRoot mounted.
type Result struct {
	// Karg is the kernel argument whose image was mounted.
	Karg Karg
	// Target is where the new root is.
	Target string
	// Verity says whether overlayfs requires fs-verity on every object
	// (false only for an insecure karg).
	Verity bool
	// Config is the configuration applied.
	Config Config
}

// Step names a phase of SetupRoot; every error says which one failed.
type Step string

// The steps, in order.
const (
	StepConfig     Step = "reading the configuration"
	StepCmdline    Step = "reading the kernel command line"
	StepRepository Step = "opening the repository"
	StepImage      Step = "mounting the image"
	StepRoot       Step = "making the root transient"
	StepSysroot    Step = "mounting the sysroot inside the new root"
	StepEtc        Step = "preparing /etc"
	StepVar        Step = "preparing /var"
	StepSwitch     Step = "moving the new root to the sysroot"
)

// StepError is the error of SetupRoot: the step that failed and why.
// Nothing SetupRoot mounted is left mounted when it returns one.
type StepError struct {
	Step Step
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("setup-root: %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

func stepErr(s Step, err error) error { return &StepError{Step: s, Err: err} }
