// Package treecmp compares two directory trees attribute by attribute: the
// check that a mounted composefs image shows exactly its source.
package treecmp

import "github.com/gocfs/gocfs/schema"

// Options says what Diff compares. The zero
// value compares everything but inode numbers, devices, atimes, ctimes,
// directory sizes and directory link counts, and the xattrs
// DefaultXattrFilter leaves out.
type Options struct {
	// Xattrs picks the xattrs to compare by name; nil means
	// DefaultXattrFilter.
	Xattrs func(name string) bool
	// NoXattrs compares no xattrs at all.
	NoXattrs bool
	// MapUID and MapGID, when not nil, map the owner of an entry of the
	// first tree to the owner expected in the second (for idmapped
	// mounts).
	MapUID, MapGID func(uint32) uint32
	// IgnoreOwners skips uid and gid.
	IgnoreOwners bool
	// IgnoreMtime skips every mtime; IgnoreDirMtime only directories'.
	IgnoreMtime, IgnoreDirMtime bool
	// IgnoreRoot skips the attributes of the two top directories (their
	// entries are still compared).
	IgnoreRoot bool
	// Hardlinks checks that entries that are hard links of each other in
	// the first tree are so in the second, and that link counts match.
	Hardlinks bool
	// IgnoreContent skips the content of regular files (sizes are still
	// compared).
	IgnoreContent bool
	// ComposefsWhiteouts expects whiteouts (character devices 0/0) of the
	// first tree to show in the second as a composefs mount shows them:
	// as empty regular files with an overlay whiteout xattr
	// ({trusted,user}.overlay.whiteout), in a directory marked with
	// {trusted,user}.overlay.whiteouts and .opaque, so that an overlayfs
	// stacked on the mount takes them for whiteouts.
	ComposefsWhiteouts bool
	// MaxDiffs stops after that many differences; 0 means 50.
	MaxDiffs int
}

// DefaultXattrFilter keeps every xattr but overlayfs's private ones
// (trusted.overlay.*), which a composefs mount hides, and security.selinux,
// which a security policy sets by itself.
func DefaultXattrFilter(name string) bool {
	return !schema.IsOverlay(name) && name != "security.selinux"
}
