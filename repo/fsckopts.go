package repo

// FsckOptions control FsckWith.
type FsckOptions struct {
	// MetadataOnly skips checking the content of the objects listed in the
	// store against their digests (cfsctl fsck --metadata-only), which is
	// most of the time a check takes: images are still read, and the
	// objects they and the streams refer to looked for, links and
	// references checked. A corrupt object then goes unreported unless
	// what it breaks shows (an image that does not read as one).
	MetadataOnly bool
}
