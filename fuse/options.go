package fuse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/mount"
)

// VerityMode says how a FUSE mount checks objects against the fs-verity
// digests the image records for them.
type VerityMode int

const (
	// VerityTry checks every object whose image entry has a digest, and
	// serves files without one unchecked. It is the zero value.
	VerityTry VerityMode = iota
	// VerityRequire is VerityTry, and also refuses (EIO) every file
	// whose content is in the object store but whose image entry has no
	// digest.
	VerityRequire
	// VerityOff checks nothing.
	VerityOff
)

// String returns "try", "require" or "off".
func (m VerityMode) String() string {
	switch m {
	case VerityTry:
		return "try"
	case VerityRequire:
		return "require"
	case VerityOff:
		return "off"
	}
	return fmt.Sprintf("VerityMode(%d)", int(m))
}

// ParseVerityMode parses "require", "try" or "off" (in any case).
func ParseVerityMode(s string) (VerityMode, error) {
	switch strings.ToLower(s) {
	case "try":
		return VerityTry, nil
	case "require":
		return VerityRequire, nil
	case "off":
		return VerityOff, nil
	}
	return 0, fmt.Errorf("%w: verity mode %q (want require, try or off)", ErrInvalidOptions, s)
}

// Options says how to serve a composefs image.
type Options struct {
	// Basedirs are the object store directories holding the content of
	// the image's regular files, searched in order. At least one is
	// needed.
	Basedirs []string

	// ExpectedDigest, when not empty, is the fs-verity digest (SHA-256,
	// 64 hex digits) the image file must have; the image is refused
	// (ErrDigestMismatch) when it has another.
	ExpectedDigest string

	// Verity says how objects are checked against their digests.
	Verity VerityMode

	// AllowOther lets users other than the one who mounts use the mount
	// (FUSE's allow_other). Without it, only the mounting user can, not
	// even root.
	AllowOther bool

	// NoSuid, NoDev and NoExec set the mount flags of those names. Mounts
	// made through fusermount3 (not as root) are always nosuid and nodev.
	NoSuid, NoDev, NoExec bool

	// NoPassthrough serves every read through this process even when
	// FUSE passthrough is available.
	NoPassthrough bool

	// Log, when not nil, receives a message for each integrity failure
	// (once per object) and for choices the server made (passthrough not
	// available, and why). When nil, messages go to the standard log
	// package.
	Log func(msg string)

	// Debug logs every FUSE request and reply (through the standard log
	// package).
	Debug bool
}

// Errors. Mount returns errors wrapping them (or the errors of the erofs
// and image packages about a bad image), with the errno in the chain when
// there is one.
var (
	// ErrInvalidOptions is wrapped by errors about Options that are
	// wrong in themselves.
	ErrInvalidOptions = errors.New("invalid FUSE mount options")

	// ErrNotComposefs is the mount package's: the image does not start
	// with the composefs header. (The image package's, which says more,
	// is in the chain too.)
	ErrNotComposefs = mount.ErrNotComposefs

	// ErrDigestMismatch is the mount package's: the image's fs-verity
	// digest is not Options.ExpectedDigest. The message shows both.
	ErrDigestMismatch = mount.ErrDigestMismatch

	// ErrUnsupported reports a system without FUSE support in this
	// package (anything but Linux).
	ErrUnsupported = errors.New("FUSE mounts are supported on Linux only")
)

// Stats are counters of what a server did, for tests and monitoring.
type Stats struct {
	Opens            uint64 // opens of files served from the object store
	Measured         uint64 // objects whose digest the kernel reported (fs-verity enabled)
	Hashed           uint64 // objects whose digest was computed here
	HashedMiB        uint64 // MiB of objects hashed here, rounded down
	CacheHits        uint64 // opens that found the object's digest in the cache
	Refused          uint64 // opens refused (EIO): mismatch, missing digest or object
	PassthroughOpens uint64 // opens served with FUSE passthrough
	ObjectReads      uint64 // read requests on objects served by this process (none with passthrough)
}
