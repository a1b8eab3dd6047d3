// Package boot makes a composefs image the root file system of a booting
// Linux system, as composefs-rs's composefs-setup-root does in an
// initramfs, and owns the kernel argument that names the image.
//
// The kernel command line carries the image's fs-verity digest
// ([Karg]): "composefs=HEX" (SHA-256 or SHA-512, told by the length) or
// "composefs.digest=v1-sha256-12:HEX" (format version, hash and block
// size spelled out). A "?" before the value ("composefs=?HEX") marks the
// karg insecure: the image is mounted without requiring fs-verity on its
// objects, for systems whose root file system has none. Covered by Secure
// Boot (a UKI's command line), the karg makes the whole tree
// tamper-evident: the image must have that digest, and with overlayfs's
// "verity=require" every file must have the fs-verity digest the image
// names.
//
// [SetupRoot] does the work of the initramfs:
//
//	res, err := boot.SetupRoot(boot.Options{}) // /proc/cmdline, /sysroot
//	if err != nil {
//		log.Fatal(err) // a *StepError: which step, and why
//	}
//	// exec switch_root /sysroot /sbin/init
//
// The repository is Sysroot/composefs (package repo); /etc and /var of
// the new root are prepared as the configuration file says ([Config],
// /usr/lib/composefs/setup-root-conf.toml): a persistent overlay or a bind
// mount of the image's state directory Sysroot/state/deploy/DIGEST, a
// transient overlay on tmpfs, or nothing. On any failure, everything
// SetupRoot mounted is unmounted again.
//
// [PrepareBoot] makes an image's tree bootable the way composefs-rs's
// "cfsctl oci prepare-boot" does: rootfs.TransformForBoot (the boot
// transformation that create-image --bootable and compute-karg apply
// too), the image stored, its state directory made, and a Boot Loader
// Specification Type 1 entry written for its kernel. [NewKarg] gives the
// karg of an image (compute-karg).
package boot
