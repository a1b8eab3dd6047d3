// Package mount mounts composefs images.
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
//		Verity:   mount.VerityTry,
//		Notice:   func(msg string) { log.Print(msg) },
//	})
//	if err != nil {
//		return err
//	}
//	defer mount.Unmount("/run/app")
//
// [ParseOptions] reads the option string of mount.composefs ("-o
// basedir=/composefs/objects,digest=…") into [Options], with upstream's
// syntax and meaning (there, as upstream, digest= implies verity; in
// [Options] the two are independent).
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
// external file will then fail to read. [VerityTry] requires verity only
// when every basedir's file system supports fs-verity, a sampled object has
// it enabled, and the kernel's overlayfs has the option (6.6); otherwise it
// mounts without and says why through [Options.Notice].
//
// # Requirements
//
// Mounting needs CAP_SYS_ADMIN. Kernel features and the Linux versions that
// brought them: the new mount API 5.2, overlayfs data-only layers 6.5,
// overlayfs verity 6.6, "lowerdir+"/"datadir+" 6.8, EROFS file-backed mounts
// 6.12 (older kernels use a loop device), idmapped layers under overlayfs
// 5.19. Errors about a missing feature are [*FeatureError] values that name
// it and the version.
package mount
