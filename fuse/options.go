package fuse

import (
	"errors"

	"github.com/gocfs/gocfs/mount"
)

// VerityMode is mount.VerityMode, the one type that says how both kinds
// of mount check objects; the constants are its values. (They are aliases,
// kept so that this package's code reads as it did.)
type VerityMode = mount.VerityMode

// The verity modes; see mount.VerityMode.
const (
	VerityTry     = mount.VerityTry
	VerityRequire = mount.VerityRequire
	VerityOff     = mount.VerityOff
)

// Errors. Mount returns errors wrapping them (or the errors of the erofs
// and image packages about a bad image), with the errno in the chain when
// there is one.
var (
	// ErrInvalidOptions is the mount package's: options that are wrong
	// in themselves, or that a FUSE mount cannot have (upperdir, idmap
	// and the other kernel-only options).
	ErrInvalidOptions = mount.ErrInvalidOptions

	// ErrNotComposefs is the mount package's: the image does not start
	// with the composefs header. (The image package's, which says more,
	// is in the chain too.)
	ErrNotComposefs = mount.ErrNotComposefs

	// ErrDigestMismatch is the mount package's: the image's fs-verity
	// digest is not Options.ExpectedDigest. The message shows both.
	ErrDigestMismatch = mount.ErrDigestMismatch

	// ErrInvalidImage is the mount package's: the structural check
	// (package verify) refused the image. The message lists what it
	// found.
	ErrInvalidImage = mount.ErrInvalidImage

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
