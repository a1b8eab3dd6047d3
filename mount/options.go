package mount

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
)

// VerityMode says whether the fs-verity digests of the objects a composefs
// mount reads are checked: by overlayfs for a kernel mount, by the server
// for a FUSE mount (package fuse). The zero value is [VerityTry]: check what
// this system can check.
type VerityMode int

const (
	// VerityTry checks what can be checked. A kernel mount passes
	// "verity=require" to overlayfs when every object store's file system
	// supports fs-verity and the kernel's overlayfs has the option, and
	// mounts without it otherwise (saying so through Options.Notice); a
	// FUSE mount checks every object whose image entry has a digest and
	// serves files without one unchecked. It is the zero value.
	VerityTry VerityMode = iota
	// VerityRequire requires every file whose content is in the object
	// store to have a digest in the image and an object with that
	// fs-verity digest: overlayfs gets "verity=require", and a FUSE
	// mount refuses (EIO) any other file.
	VerityRequire
	// VerityOff checks nothing.
	VerityOff
)

// String returns "try", "require" or "off".
func (m VerityMode) String() string {
	switch m {
	case VerityOff:
		return "off"
	case VerityTry:
		return "try"
	case VerityRequire:
		return "require"
	}
	return fmt.Sprintf("VerityMode(%d)", int(m))
}

// ParseVerityMode parses "off", "try" or "require" (in any case), as
// String prints them.
func ParseVerityMode(s string) (VerityMode, error) {
	for _, m := range []VerityMode{VerityTry, VerityRequire, VerityOff} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: verity mode %q: want off, try or require", ErrInvalidOptions, s)
}

// Method says how an image is mounted: with the kernel (overlayfs over
// EROFS, this package) or with FUSE (package fuse). The zero value is
// [Auto]. Package mounter makes the choice; [Mount] always mounts with the
// kernel and fuse.Mount always with FUSE, and each refuses the other's
// method.
type Method int

const (
	// Auto mounts with the kernel when it can, and with FUSE when the
	// caller is not root or the kernel lacks what a composefs mount
	// needs (package mounter).
	Auto Method = iota
	// Kernel mounts with the kernel only.
	Kernel
	// FUSE serves the image with FUSE only.
	FUSE
)

// String returns "auto", "kernel" or "fuse".
func (m Method) String() string {
	switch m {
	case Auto:
		return "auto"
	case Kernel:
		return "kernel"
	case FUSE:
		return "fuse"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// Options says how to mount a composefs image. One type serves both ways
// of mounting: the kernel ([Mount]) and FUSE (package fuse); a few fields
// are for one of them only, as their comments say. The zero value is the
// safe default (fs-verity checked where possible, the image verified, no
// devices, no setuid) but not usable as it is: at least one basedir is
// needed. Options marshal as JSON, without the functions and the open file.
type Options struct {
	// Basedirs are the object store directories holding the content of
	// the image's regular files (the --digest-store of mkcomposefs). They
	// become overlayfs data-only layers, searched in order.
	Basedirs []string

	// ExpectedDigest, when not empty, is the fs-verity digest (SHA-256,
	// 64 hex digits) the image file must have. The image is refused when
	// it has another one.
	ExpectedDigest string

	// Verity says whether the objects' fs-verity digests are checked.
	Verity VerityMode

	// NoVerify skips the structural check of the image (package verify)
	// that every mount makes before the kernel or the FUSE server reads
	// the image. Set it only for images from a trusted source: the check
	// is what keeps a malformed image away from the kernel's EROFS driver.
	NoVerify bool

	// Method says how to mount (package mounter; see [Method]).
	Method Method

	// AllowDevices lets device nodes of the image be opened as devices,
	// and AllowSetuid lets setuid and setgid bits (and file capabilities)
	// of the image take effect. Without them the mount is nodev and
	// nosuid: an image's content is untrusted, and a world-readable block
	// device in it would give its readers the raw disk. Set them for a
	// trusted image that must behave as a real root file system.
	AllowDevices, AllowSetuid bool

	// ReadOnly makes the overlay mount read-only. A mount without an
	// UpperDir is always read-only (and so is every FUSE mount).
	ReadOnly bool

	// NoExec, NoAtime, NoDiratime and StrictAtime set the mount
	// attributes of those names (the default for access times is
	// relatime). FUSE mounts take NoExec and ignore the others.
	NoExec              bool
	NoAtime, NoDiratime bool
	StrictAtime         bool

	// UpperDir and WorkDir, when set (both or neither), make the mount
	// writable: changes go to UpperDir, as with any overlayfs. WorkDir
	// must be an empty directory on the same file system as UpperDir.
	// Kernel mounts only.
	UpperDir string
	WorkDir  string

	// IDMapPath is the path of a user namespace (typically
	// /proc/PID/ns/user) whose ID mapping the mount shows: a file owned by
	// uid U in the image appears owned by the host uid that U maps to in
	// that namespace. IDMapFile is the same as an open file; at most one
	// of them may be set. The caller keeps ownership of IDMapFile. Kernel
	// mounts only.
	IDMapPath string
	IDMapFile *os.File `json:"-"`

	// MountNamespace, when set, is the path of a mount namespace
	// (/proc/PID/ns/mnt) in which to put the mount: target is looked up
	// there, everything else in the caller's namespace. It needs a kernel
	// with overlayfs "lowerdir+" (6.8). Kernel mounts only.
	MountNamespace string

	// FUSE holds what only FUSE mounts use.
	FUSE FUSEOptions

	// Notice, when not nil, receives messages about choices the mount
	// made that the caller may want to know: verity not used under
	// VerityTry and why, a loop device used because the kernel lacks
	// EROFS file-backed mounts, fs-verity missing under VerityRequire,
	// FUSE used instead of the kernel and why. A FUSE server also reports
	// each integrity failure (once per object) here; when Notice is nil
	// those go to the standard log package.
	Notice func(msg string) `json:"-"`

	// forceLoop makes Mount use a loop device even when EROFS could mount
	// the file directly (tests use it to exercise that path).
	forceLoop bool
	// forceTmpdir makes Mount attach the EROFS mount to a temporary
	// directory instead of handing it to overlayfs detached.
	forceTmpdir bool
	// forceLegacy makes Mount use mount(2) for the overlay.
	forceLegacy bool
}

// FUSEOptions are the options of FUSE mounts only (package fuse).
type FUSEOptions struct {
	// AllowOther lets users other than the one who mounts use the mount
	// (FUSE's allow_other). Without it, only the mounting user can, not
	// even root. For a mounter other than root, /etc/fuse.conf must have
	// user_allow_other.
	AllowOther bool

	// NoPassthrough serves every read through the server even when FUSE
	// passthrough is available.
	NoPassthrough bool

	// Debug logs every FUSE request and reply (through the standard log
	// package).
	Debug bool

	// Start, when not nil, makes the FUSE mount by calling it with the
	// image's path, the target and these options (Method set to FUSE)
	// instead of serving the image from this process: "gocfs mount
	// --background" starts a server process this way. Package mounter
	// uses it; package fuse ignores it.
	Start func(image, target string, opts Options) error `json:"-"`
}

// KernelOnly names an option set in o that only a kernel mount has
// (upperdir, workdir, idmap, a mount namespace), or returns "".
func (o *Options) KernelOnly() string {
	switch {
	case o.UpperDir != "":
		return "upperdir"
	case o.WorkDir != "":
		return "workdir"
	case o.IDMapPath != "" || o.IDMapFile != nil:
		return "idmap"
	case o.MountNamespace != "":
		return "a mount namespace"
	}
	return ""
}

// ErrInvalidOptions is wrapped by every error about Options that are wrong
// in themselves, before anything is looked at on disk.
var ErrInvalidOptions = errors.New("invalid composefs mount options")

// Validate checks the options that need no system call, whatever the
// method, and returns the expected digest decoded (nil when none is set).
// Every error wraps [ErrInvalidOptions]. Mount and fuse.Mount call it.
func (o *Options) Validate() ([]byte, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, a...))
	}
	if len(o.Basedirs) == 0 {
		return nil, bad("no basedir given: name the object store directory (mkcomposefs --digest-store), e.g. basedir=/composefs/objects")
	}
	for _, d := range o.Basedirs {
		if d == "" {
			return nil, bad("empty basedir")
		}
	}
	if (o.UpperDir == "") != (o.WorkDir == "") {
		return nil, bad("upperdir and workdir must be given together")
	}
	if o.NoAtime && o.StrictAtime {
		return nil, bad("noatime and strictatime exclude each other")
	}
	if o.IDMapPath != "" && o.IDMapFile != nil {
		return nil, bad("give either IDMapPath or IDMapFile, not both")
	}
	switch o.Verity {
	case VerityOff, VerityTry, VerityRequire:
	default:
		return nil, bad("unknown verity mode %d", int(o.Verity))
	}
	switch o.Method {
	case Auto, Kernel, FUSE:
	default:
		return nil, bad("unknown mount method %d", int(o.Method))
	}
	if o.ExpectedDigest == "" {
		return nil, nil
	}
	d, err := fsverity.ParseHex(o.ExpectedDigest, fsverity.SHA256)
	if err != nil {
		return nil, bad("digest %q: want the image's SHA-256 fs-verity digest, 64 hex digits (as composefs-info measure-file prints it)", o.ExpectedDigest)
	}
	return d, nil
}

// validate is Validate for a kernel mount.
func (o *Options) validate() ([]byte, error) {
	d, err := o.Validate()
	if err == nil && o.Method == FUSE {
		err = fmt.Errorf("%w: method fuse: this package mounts with the kernel (use package mounter or fuse)", ErrInvalidOptions)
	}
	return d, err
}

func (o *Options) notice(format string, a ...any) {
	if o.Notice != nil {
		o.Notice(fmt.Sprintf(format, a...))
	}
}

// ParseOptions parses a mount.composefs option string, as given to "-o",
// with upstream's meaning: options not given take mount.composefs's
// defaults, which are not the zero Options: no fs-verity checks
// (Verity is VerityOff unless verity, tryverity or digest is given), and,
// as mount(8) does, devices and setuid allowed (AllowDevices and
// AllowSetuid are true unless nodev or nosuid is given). See
// [Options.Parse] for the syntax.
func ParseOptions(s string) (Options, error) {
	o := upstreamDefaults()
	err := o.parse(s, nil)
	if err != nil {
		return Options{}, err
	}
	return o, nil
}

// ParseOptionsSloppy is ParseOptions for "mount -s": it skips the options
// it does not know, and returns their keys, instead of failing.
func ParseOptionsSloppy(s string) (Options, []string, error) {
	var skipped []string
	o := upstreamDefaults()
	if err := o.parse(s, func(key string) { skipped = append(skipped, key) }); err != nil {
		return Options{}, nil, err
	}
	return o, skipped, nil
}

// upstreamDefaults are the options of a mount.composefs command line
// without -o.
func upstreamDefaults() Options {
	return Options{Verity: VerityOff, AllowDevices: true, AllowSetuid: true}
}

// Parse applies the mount.composefs option string s to o: each option s
// gives replaces what o had, the others keep their value (so that "gocfs
// mount -o" adds to this package's defaults, where ParseOptions starts from
// upstream's). On error o is unchanged.
//
// s is comma-separated options, each "key" or "key=value". A backslash
// makes the character after it literal (so "\," is a comma inside a value,
// and "\\" a backslash); only values are unescaped, as upstream does. The
// options are:
//
//	basedir=PATH[:PATH...]  object store directories (Options.Basedirs)
//	digest=HEX              expected fs-verity digest of the image; implies verity
//	verity                  Options.Verity = VerityRequire
//	tryverity               Options.Verity = VerityTry (unless verity or digest)
//	ro, rw                  read-only or not; the last one wins
//	upperdir=PATH           overlayfs upper directory
//	workdir=PATH            overlayfs work directory
//	idmap=PATH              user namespace to idmap the mount with (Options.IDMapPath)
//	noverify                Options.NoVerify: skip the structural check of the image
//
// Beyond upstream, it takes the generic mount flags that mount(8) passes
// on to a mount helper: nosuid, nodev, noexec, noatime, nodiratime,
// strictatime, and their opposites suid, dev, exec, atime (or relatime),
// diratime; the last one wins. noverify is gocfs's own (upstream has no
// such option; not to be confused with the "noverity" of its early
// versions, which it no longer takes either).
//
// A later basedir, digest, upperdir, workdir or idmap replaces an earlier
// one. A value given to an option that takes none is ignored, as upstream
// does. Any other option, including an empty one (as in "ro,,rw"), is an
// error. Every error wraps [ErrInvalidOptions].
//
// Parse checks the syntax only; [Mount] checks the rest (that a basedir is
// given, that upperdir and workdir go together, the digest).
func (o *Options) Parse(s string) error {
	return o.parse(s, nil)
}

// parse applies s to o, passing the keys it does not know to unknown, or
// failing on them when unknown is nil.
func (o *Options) parse(s string, unknown func(key string)) error {
	n := *o
	var verity, tryverity bool
	var digest *string
	rest, more := s, true
	for more {
		var key string
		var value *string
		key, value, rest, more = nextOption(rest)
		switch key {
		case "verity":
			verity = true
		case "tryverity":
			tryverity = true
		case "digest":
			v, err := optionValue(key, value)
			if err != nil {
				return err
			}
			digest = &v
		default:
			known, err := n.setOption(key, value)
			if err != nil {
				return err
			}
			if !known {
				if unknown == nil {
					return fmt.Errorf("%w: unsupported option %q", ErrInvalidOptions, key)
				}
				unknown(key)
			}
		}
	}
	if digest != nil {
		n.ExpectedDigest = *digest
	}
	switch {
	case verity || digest != nil:
		n.Verity = VerityRequire
	case tryverity:
		n.Verity = VerityTry
	}
	*o = n
	return nil
}

// optionValue returns the value of the option key, which needs one.
func optionValue(key string, value *string) (string, error) {
	if value == nil {
		return "", fmt.Errorf("%w: no value specified for %s option", ErrInvalidOptions, key)
	}
	if *value == "" {
		return "", fmt.Errorf("%w: empty value for %s option", ErrInvalidOptions, key)
	}
	return *value, nil
}

// setOption sets the option key (other than the verity ones) in o. known
// is false for a key it does not know.
func (o *Options) setOption(key string, value *string) (known bool, err error) {
	switch key {
	case "basedir":
		v, err := optionValue(key, value)
		if err != nil {
			return true, err
		}
		dirs := strings.Split(v, ":")
		for _, d := range dirs {
			if d == "" {
				return true, fmt.Errorf("%w: value for basedir option has incorrect format: %q has an empty path", ErrInvalidOptions, v)
			}
		}
		o.Basedirs = dirs
	case "upperdir":
		o.UpperDir, err = optionValue(key, value)
	case "workdir":
		o.WorkDir, err = optionValue(key, value)
	case "idmap":
		o.IDMapPath, err = optionValue(key, value)
	case "rw", "ro":
		o.ReadOnly = key == "ro"
	case "noverify":
		o.NoVerify = true
	case "nosuid", "suid":
		o.AllowSetuid = key == "suid"
	case "nodev", "dev":
		o.AllowDevices = key == "dev"
	case "noexec", "exec":
		o.NoExec = key == "noexec"
	case "nodiratime", "diratime":
		o.NoDiratime = key == "nodiratime"
	case "noatime":
		o.NoAtime, o.StrictAtime = true, false
	case "strictatime":
		o.NoAtime, o.StrictAtime = false, true
	case "atime", "relatime":
		o.NoAtime, o.StrictAtime = false, false
	default:
		return false, nil
	}
	return true, err
}

// nextOption splits the first option off s, the way upstream's
// parse_option does: the first unescaped '=' ends the key, the first
// unescaped ',' ends the option, and a backslash protects the character
// after it. The key is returned as written; the value is unescaped (nil when
// there is no '='). more is false when s held the last option.
func nextOption(s string) (key string, value *string, rest string, more bool) {
	eq := -1
	end := len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=' && eq < 0:
			eq = i
		case c == '\\' && i+1 < len(s):
			i++
		case c == ',':
			end = i
		}
		if end != len(s) {
			break
		}
	}
	opt := s[:end]
	if end < len(s) {
		rest, more = s[end+1:], true
	}
	if eq < 0 || eq >= end {
		return opt, nil, rest, more
	}
	v := unescapeOption(opt[eq+1:])
	return opt[:eq], &v, rest, more
}

// unescapeOption drops every backslash and keeps the character after it; a
// trailing lone backslash is dropped.
func unescapeOption(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// EscapeOption escapes a value for a mount.composefs option string, so that
// ParseOptions gives it back: it puts a backslash before every backslash and
// comma. (A colon inside a basedir cannot be escaped: basedir splits on
// every colon, as upstream does.)
func EscapeOption(s string) string {
	if !strings.ContainsAny(s, `\,`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == ',' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
