package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// DefaultConfigPath is where composefs-setup-root reads its configuration.
const DefaultConfigPath = "/usr/lib/composefs/setup-root-conf.toml"

// maxConfigSize bounds the configuration file read.
const maxConfigSize = 64 << 10

// ErrConfig is wrapped by every error about a bad configuration file.
var ErrConfig = errors.New("boot: bad setup-root configuration")

// MountMode says how setup-root prepares /etc or /var of the new root
// (composefs-setup-root's MountType).
type MountMode string

// The mount modes. The zero value means "not set": the directory's
// default applies ([DefaultEtc], [DefaultVar]), or Transient when the
// section says transient = true.
const (
	// ModeNone leaves the image's directory as it is (read-only).
	ModeNone MountMode = "none"
	// ModeBind bind-mounts the state directory's copy
	// (state/deploy/DIGEST/var) over it.
	ModeBind MountMode = "bind"
	// ModeOverlay mounts an overlay with the image's directory below and
	// the state directory's DIR/upper and DIR/work (made when missing)
	// above: changes persist across boots, per image.
	ModeOverlay MountMode = "overlay"
	// ModeTransient mounts an overlay with an upper layer on a fresh
	// tmpfs: changes vanish at shutdown.
	ModeTransient MountMode = "transient"
)

// The defaults of composefs-setup-root.
const (
	DefaultEtc = ModeOverlay
	DefaultVar = ModeBind
)

// MountConfig is one section ([etc] or [var]) of the configuration.
type MountConfig struct {
	// Mount is the mode; empty for the default.
	Mount MountMode `toml:"mount"`
	// Transient, with Mount empty, selects ModeTransient.
	Transient bool `toml:"transient"`
}

// RootConfig is the [root] section.
type RootConfig struct {
	// Transient puts a tmpfs-backed overlay over the whole root: every
	// path becomes writable, and every change vanishes at shutdown.
	Transient bool `toml:"transient"`
}

// Config is composefs-setup-root's configuration file
// (/usr/lib/composefs/setup-root-conf.toml), for example:
//
//	[etc]
//	mount = "transient"   # none, bind, overlay (default) or transient
//	[var]
//	mount = "bind"        # the default
//	[root]
//	transient = false
type Config struct {
	Etc  MountConfig `toml:"etc"`
	Var  MountConfig `toml:"var"`
	Root RootConfig  `toml:"root"`
}

// EtcMode returns the mode for /etc.
func (c Config) EtcMode() MountMode { return c.Etc.mode(DefaultEtc) }

// VarMode returns the mode for /var.
func (c Config) VarMode() MountMode { return c.Var.mode(DefaultVar) }

func (m MountConfig) mode(def MountMode) MountMode {
	switch {
	case m.Mount != "":
		return m.Mount
	case m.Transient:
		return ModeTransient
	}
	return def
}

// ParseConfig reads a configuration. Unknown mount modes and values of the
// wrong type are errors; keys gocfs does not know are returned in unknown
// (composefs-setup-root ignores them too, but a misspelt key silently
// falling back to a default deserves a warning).
func ParseConfig(r io.Reader) (c Config, unknown []string, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(data) > maxConfigSize {
		return Config{}, nil, fmt.Errorf("%w: larger than %d bytes", ErrConfig, maxConfigSize)
	}
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, k := range md.Undecoded() {
		unknown = append(unknown, k.String())
	}
	for _, s := range []struct {
		name string
		m    MountMode
	}{{"etc", c.Etc.Mount}, {"var", c.Var.Mount}} {
		switch s.m {
		case "", ModeNone, ModeBind, ModeOverlay, ModeTransient:
		default:
			return Config{}, nil, fmt.Errorf("%w: [%s] mount = %q: want none, bind, overlay or transient", ErrConfig, s.name, s.m)
		}
	}
	if err := c.Check(); err != nil {
		return Config{}, nil, err
	}
	return c, unknown, nil
}

// Check reports a configuration the kernel cannot mount: overlayfs stacks
// at most two deep and the image is already one overlay, so with [root]
// transient (a second) /etc and /var can only be none or bind.
func (c Config) Check() error {
	if !c.Root.Transient {
		return nil
	}
	for _, d := range []struct {
		name string
		m    MountMode
	}{{"etc", c.EtcMode()}, {"var", c.VarMode()}} {
		if d.m == ModeOverlay || d.m == ModeTransient {
			return fmt.Errorf("%w: with [root] transient = true, [%s] mount must be none or bind, not %s: the kernel stacks at most two overlays, and the image and the transient root are two already", ErrConfig, d.name, d.m)
		}
	}
	return nil
}

// ReadConfig reads the configuration file at path; a missing file is the
// default configuration, as for composefs-setup-root.
func ReadConfig(path string) (Config, []string, error) {
	// Not blocking: a FIFO in its place must not hang the boot.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil, nil
	}
	if err != nil {
		return Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return Config{}, nil, fmt.Errorf("%w: %s is not a regular file", ErrConfig, path)
	}
	c, unknown, err := ParseConfig(f)
	if err != nil {
		return Config{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, unknown, nil
}

// String renders the configuration in the file's syntax, with the modes
// resolved.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[etc]\nmount = %q\n[var]\nmount = %q\n[root]\ntransient = %v\n", c.EtcMode(), c.VarMode(), c.Root.Transient)
	return b.String()
}
