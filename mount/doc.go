// Package mount mounts composefs images with the kernel, and owns what
// every composefs mount is told: [Options] (one set for the kernel mount
// and for the FUSE mount of package fuse), [VerityMode], [Method], the
// option syntax of mount.composefs, and the structural check every mount
// makes first ([CheckImage]). To mount with the kernel when possible and
// with FUSE otherwise, use package mounter, which chooses.
//
// A composefs image is an EROFS file holding the metadata of a directory
// tree; the content of its regular files lives in one or more object store
// directories ("basedirs"), addressed by the redirects the image carries.
// Mounting one takes two kernel mounts: the EROFS image, and an overlayfs
// that has the EROFS mount as its lower layer and the object stores as
// data-only layers. [Mount] does both in-process, with the new mount API
// (fsopen/fsconfig/fsmount/move_mount), so that (from Linux 6.15 on) the
// EROFS mount is never attached to any directory: only the overlay appears,
// at the target.
//
// Usage:
//
//	err := mount.Mount("/composefs/images/app.cfs", "/run/app", mount.Options{
//		Basedirs: []string{"/composefs/objects"},
//		Notice:   func(msg string) { log.Print(msg) },
//	})
//	if err != nil {
//		return err
//	}
//	defer mount.Unmount("/run/app")
//
// The zero Options are the safe ones: fs-verity required where the system
// supports it ([VerityTry]), the image checked, and the mount nodev and
// nosuid (an image's device nodes do not open as devices, its setuid bits
// do nothing) unless [Options.AllowDevices] or [Options.AllowSetuid] is set.
// [ParseOptions] reads the option string of mount.composefs ("-o
// basedir=/composefs/objects,digest=…") into Options with upstream's syntax
// and meaning: verity off unless asked for, devices and setuid allowed
// unless nodev or nosuid is given, and, as upstream, digest= implying
// verity (in Options the two are independent). [Options.Parse] applies
// such a string onto given options instead.
//
// [MountDetached] makes the same mount attached nowhere and returns it as a
// file descriptor (fsmount(2)), for its holder, or a process it passes the
// descriptor to (package mountd), to attach with move_mount(2). [SealedCopy]
// makes the sealed private copy described below, bounded in size, for
// callers that check an image themselves before mounting it.
//
// # What happens
//
// The image header is checked (composefs magic; bit 0 of its flags tells
// whether the image carries POSIX ACLs, and the EROFS mount gets "noacl"
// when it does not). With [Options.ExpectedDigest] the image's fs-verity
// digest is checked first: by FS_IOC_MEASURE_VERITY when the file has
// fs-verity, otherwise by copying the image into a private memfd sealed
// against any change, computing the digest of that copy in userspace and
// mounting the copy (through a loop device: EROFS cannot mount a memfd), so
// that the bytes checked are the bytes mounted. The copy takes as much
// memory as the image is large, for as long as the mount lasts.
//
// Then, unless [Options.NoVerify] is set, the image passes the structural
// check of package verify ([CheckImage]): every inode, directory, name and
// xattr the kernel's EROFS driver and overlayfs will read, so that a
// malformed image (an entry pointing past the end, an unsorted directory,
// a redirect out of the object store) is refused with what is wrong
// (wrapping [ErrInvalidImage]) instead of reaching the kernel. The bytes
// checked are the bytes mounted: the image file is mounted in place only
// when nobody but root can change it afterwards (fs-verity enabled; or
// owned by root, writable by no one else, on a local file system whose
// content the kernel owns: ext4, XFS, Btrfs, F2FS, bcachefs, tmpfs, EROFS,
// squashfs); any other image (a user's, a world-writable one, one on FUSE
// or NFS) is checked and mounted as a sealed private copy, as above. The
// check costs about half a second of CPU for an image of 50,000 inodes (12 MB).
//
// EROFS is mounted from the image file itself (file-backed mounts, Linux
// 6.12); when the kernel answers ENOTBLK, a read-only, auto-clearing loop
// device is set up over the file instead and is released with the mount.
// The overlay is configured with "lowerdir+" (the detached EROFS mount,
// passed as a file descriptor, Linux 6.15) and "datadir+" (each basedir),
// "metacopy=on", "redirect_dir=on", and "verity=require" when asked for. On
// kernels that cannot take a detached mount as a layer, the EROFS mount is
// attached to a private temporary directory for as long as the overlay is
// being set up, as upstream does; on kernels without "lowerdir+" the overlay
// is mounted with mount(2) and "lowerdir=EROFS::DATA1::DATA2", or
// "lowerdir=EROFS:DATA1" before data-only layers (6.5).
//
// # Verity
//
// [VerityRequire] passes "verity=require" to overlayfs: every file must carry
// an fs-verity digest in the image, and the object it names must have
// fs-verity enabled with that digest, or reading it fails with EIO. Mount
// does as asked even when the object store's file system has no fs-verity
// (the kernel enforces it), but reports through [Options.Notice] that every
// external file will then fail to read. [VerityTry], the zero value,
// requires verity when every basedir's file system supports fs-verity and
// the kernel's overlayfs has the option (6.6), whatever the objects have (a
// sampled object without fs-verity only brings a warning: whoever can strip
// it from one object must not turn the checks off for all); otherwise it
// mounts without and says why through [Options.Notice]. [VerityOff] asks
// for nothing.
//
// # Requirements
//
// Mounting needs CAP_SYS_ADMIN (package mounter then serves the image with
// FUSE instead). Kernel features and the Linux versions that brought them: the new mount API 5.2, overlayfs data-only layers 6.5,
// overlayfs verity 6.6, "lowerdir+"/"datadir+" 6.8, EROFS file-backed mounts
// 6.12 (older kernels use a loop device), idmapped layers under overlayfs
// 5.19. Errors about a missing feature are [*FeatureError] values that name
// it and the version.
package mount
