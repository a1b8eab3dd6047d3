package testutil

import (
	"github.com/gocfs/gocfs/internal/treecmp"
	"os"
)

// SampleOptions says what MakeSampleTree puts in a tree beyond what any
// user can make.
type SampleOptions struct {
	// Privileged adds what needs root: character and block devices, a
	// whiteout (character device 0/0), trusted.* and security.* xattrs,
	// and files owned by other users and groups.
	Privileged bool
	// ACLs adds POSIX ACLs (system.posix_acl_access and
	// system.posix_acl_default), which make an image carry the ACL flag.
	ACLs bool
	// Hardlinks adds files with several links.
	Hardlinks bool
	// NoWhiteout leaves out the whiteout even when Privileged.
	NoWhiteout bool
	// Seed varies the content of the files (the same seed gives the same
	// tree).
	Seed uint64
}

// DefaultSampleOptions returns the options that make the richest tree the
// current user can make: Privileged when root, with hard links, without
// ACLs.
func DefaultSampleOptions() SampleOptions {
	return SampleOptions{Privileged: os.Geteuid() == 0, Hardlinks: true}
}

// Sizes of the regular files of a sample tree: around the inline limit
// (64), around a block (4096), and beyond.
var SampleSizes = []int{0, 1, 63, 64, 65, 100, 4095, 4096, 4097, 65536, 100000, 1 << 20}

// CompareOptions says what CompareTrees and DiffTrees compare (see
// treecmp.Options).
type CompareOptions = treecmp.Options

// DefaultXattrFilter is treecmp.DefaultXattrFilter.
var DefaultXattrFilter = treecmp.DefaultXattrFilter

// IDMap is one line of a user namespace's uid_map or gid_map: IDs
// [Inside, Inside+Size) in the namespace are [Outside, Outside+Size) on the
// host.
type IDMap struct {
	Inside, Outside, Size uint32
}

// MountInfo is one line of /proc/self/mountinfo, in part.
type MountInfo struct {
	MountPoint string
	FSType     string
	Source     string
	Options    string // per-mount options
	SuperOpts  string // per-superblock options
}
