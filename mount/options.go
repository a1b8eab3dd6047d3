package mount

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
)

// VerityMode says whether overlayfs must check the fs-verity digests of the
// objects a composefs mount reads.
type VerityMode int

const (
	// VerityOff does not ask overlayfs to check fs-verity digests.
	VerityOff VerityMode = iota
	// VerityTry requires fs-verity when the object stores' file systems
	// support it (and a sampled object has it enabled) and the kernel's
	// overlayfs has the "verity" option, and mounts without it otherwise
	// (saying so through Options.Notice).
	VerityTry
	// VerityRequire passes "verity=require" to overlayfs: a file whose
	// image entry has no digest, or whose object lacks fs-verity or has
	// another digest, fails to read with EIO.
	VerityRequire
)

// String returns "off", "try" or "require".
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

// ParseVerityMode parses "off", "try" or "require", as String prints them.
func ParseVerityMode(s string) (VerityMode, error) {
	for _, m := range []VerityMode{VerityOff, VerityTry, VerityRequire} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: verity mode %q: want off, try or require", ErrInvalidOptions, s)
}

// Options says how to mount a composefs image. The zero value is not
// usable: at least one basedir is needed.
type Options struct {
	// Basedirs are the object store directories holding the content of
	// the image's regular files (the --digest-store of mkcomposefs). They
	// become overlayfs data-only layers, searched in order.
	Basedirs []string

	// ExpectedDigest, when not empty, is the fs-verity digest (SHA-256,
	// 64 hex digits) the image file must have. The image is refused when
	// it has another one.
	ExpectedDigest string

	// Verity says whether overlayfs checks the objects' fs-verity digests.
	Verity VerityMode

	// ReadOnly makes the overlay mount read-only. A mount without an
	// UpperDir is always read-only.
	ReadOnly bool

	// NoSuid, NoDev, NoExec, NoAtime, NoDiratime and StrictAtime set the
	// mount attributes of those names (the default for access times is
	// relatime).
	NoSuid, NoDev, NoExec bool
	NoAtime, NoDiratime   bool
	StrictAtime           bool

	// UpperDir and WorkDir, when set (both or neither), make the mount
	// writable: changes go to UpperDir, as with any overlayfs. WorkDir
	// must be an empty directory on the same file system as UpperDir.
	UpperDir string
	WorkDir  string

	// IDMapPath is the path of a user namespace (typically
	// /proc/PID/ns/user) whose ID mapping the mount shows: a file owned by
	// uid U in the image appears owned by the host uid that U maps to in
	// that namespace. IDMapFile is the same as an open file; at most one
	// of them may be set. The caller keeps ownership of IDMapFile.
	IDMapPath string
	IDMapFile *os.File

	// MountNamespace, when set, is the path of a mount namespace
	// (/proc/PID/ns/mnt) in which to put the mount: target is looked up
	// there, everything else in the caller's namespace. It needs a kernel
	// with overlayfs "lowerdir+" (6.8).
	MountNamespace string

	// Notice, when not nil, receives messages about choices Mount made
	// that the caller may want to know: verity not used under VerityTry
	// and why, a loop device used because the kernel lacks EROFS
	// file-backed mounts, fs-verity missing under VerityRequire.
	Notice func(msg string)

	// forceLoop makes Mount use a loop device even when EROFS could mount
	// the file directly (tests use it to exercise that path).
	forceLoop bool
	// forceTmpdir makes Mount attach the EROFS mount to a temporary
	// directory instead of handing it to overlayfs detached.
	forceTmpdir bool
	// forceLegacy makes Mount use mount(2) for the overlay.
	forceLegacy bool
}

// ErrInvalidOptions is wrapped by every error about Options that are wrong
// in themselves, before anything is looked at on disk.
var ErrInvalidOptions = errors.New("invalid composefs mount options")

// validate checks the options that need no system call, and returns the
// expected digest decoded.
func (o *Options) validate() ([]byte, error) {
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
	if o.ExpectedDigest == "" {
		return nil, nil
	}
	d, err := fsverity.ParseHex(o.ExpectedDigest, fsverity.SHA256)
	if err != nil {
		return nil, bad("digest %q: want the image's SHA-256 fs-verity digest, 64 hex digits (as composefs-info measure-file prints it)", o.ExpectedDigest)
	}
	return d, nil
}

func (o *Options) notice(format string, a ...any) {
	if o.Notice != nil {
		o.Notice(fmt.Sprintf(format, a...))
	}
}

// ParseOptions parses a mount.composefs option string, as given to "-o":
// comma-separated options, each "key" or "key=value". A backslash makes the
// character after it literal (so "\," is a comma inside a value, and "\\" a
// backslash); only values are unescaped, as upstream does. The options are:
//
//	basedir=PATH[:PATH...]  object store directories (Options.Basedirs)
//	digest=HEX              expected fs-verity digest of the image; implies verity
//	verity                  Options.Verity = VerityRequire
//	tryverity               Options.Verity = VerityTry (unless verity or digest)
//	ro, rw                  read-only or not; the last one wins
//	upperdir=PATH           overlayfs upper directory
//	workdir=PATH            overlayfs work directory
//	idmap=PATH              user namespace to idmap the mount with (Options.IDMapPath)
//
// Beyond upstream, it takes the generic mount flags that mount(8) passes
// on to a mount helper: nosuid, nodev, noexec, noatime, nodiratime,
// strictatime, and their opposites suid, dev, exec, atime (or relatime),
// diratime; the last one wins.
//
// A later basedir, digest, upperdir, workdir or idmap replaces an earlier
// one. A value given to an option that takes none is ignored, as upstream
// does. Any other option, including an empty one (as in "ro,,rw"), is an
// error. Every error wraps [ErrInvalidOptions].
//
// ParseOptions checks the syntax only; [Mount] checks the rest (that a
// basedir is given, that upperdir and workdir go together, the digest).
func ParseOptions(s string) (Options, error) {
	return parseOptions(s, nil)
}

// ParseOptionsSloppy is ParseOptions for "mount -s": it skips the options
// it does not know, and returns their keys, instead of failing.
func ParseOptionsSloppy(s string) (Options, []string, error) {
	var skipped []string
	o, err := parseOptions(s, func(key string) { skipped = append(skipped, key) })
	return o, skipped, err
}

// parseOptions parses s, passing the keys it does not know to unknown, or
// failing on them when unknown is nil.
func parseOptions(s string, unknown func(key string)) (Options, error) {
	var (
		o                 Options
		verity, tryverity bool
		digest            *string
	)
	bad := func(format string, a ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, a...))
	}
	rest, more := s, true
	for more {
		var key string
		var value *string
		key, value, rest, more = nextOption(rest)
		need := func() (string, error) {
			if value == nil {
				return "", fmt.Errorf("%w: no value specified for %s option", ErrInvalidOptions, key)
			}
			if *value == "" {
				return "", fmt.Errorf("%w: empty value for %s option", ErrInvalidOptions, key)
			}
			return *value, nil
		}
		var err error
		switch key {
		case "basedir":
			var v string
			if v, err = need(); err == nil {
				o.Basedirs = strings.Split(v, ":")
				for _, d := range o.Basedirs {
					if d == "" {
						return bad("value for basedir option has incorrect format: %q has an empty path", v)
					}
				}
			}
		case "digest":
			var v string
			if v, err = need(); err == nil {
				digest = &v
			}
		case "verity":
			verity = true
		case "tryverity":
			tryverity = true
		case "upperdir":
			o.UpperDir, err = need()
		case "workdir":
			o.WorkDir, err = need()
		case "idmap":
			o.IDMapPath, err = need()
		case "rw":
			o.ReadOnly = false
		case "ro":
			o.ReadOnly = true
		case "nosuid", "suid":
			o.NoSuid = key == "nosuid"
		case "nodev", "dev":
			o.NoDev = key == "nodev"
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
			if unknown != nil {
				unknown(key)
				continue
			}
			return bad("unsupported option %q", key)
		}
		if err != nil {
			return Options{}, err
		}
	}
	if digest != nil {
		o.ExpectedDigest = *digest
	}
	switch {
	case verity || digest != nil:
		o.Verity = VerityRequire
	case tryverity:
		o.Verity = VerityTry
	}
	return o, nil
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
