// Package fuse serves composefs images through FUSE, with the integrity
// of every file's content checked in userspace.
//
// It is the mount for when the kernel one is not possible: without root,
// or on a kernel whose overlayfs lacks data-only layers; package mounter
// chooses between the two. It takes the options of every composefs mount,
// mount.Options (the kernel-only ones excepted), with their safe zero
// value: objects checked where they have a digest, the image checked, the
// mount nodev and nosuid. The image is read
// by the erofs package, which never trusts it; the tree it shows is the one
// a kernel composefs mount (overlayfs over EROFS) shows, attribute for
// attribute: the same inode numbers (the EROFS nids), modes, owners, sizes,
// mtimes to the nanosecond, link counts, device numbers, symlink targets and
// extended attributes, with overlayfs's private trusted.overlay.* xattrs
// hidden, escaped ones (trusted.overlay.overlay.X) shown unescaped as
// trusted.overlay.X, and the 256 whiteouts composefs puts in the root
// hidden. Hard links keep one inode number. Nothing is read until it is
// looked up.
//
// Usage:
//
//	srv, err := fuse.Mount("app.cfs", "/run/app", mount.Options{
//		Basedirs: []string{"/composefs/objects"},
//		Verity:   mount.VerityRequire,
//	})
//	if err != nil {
//		return err
//	}
//	defer srv.Unmount()
//	srv.Wait() // until unmounted (gocfs umount, fusermount3 -u)
//
// # Content
//
// A regular file that carries a composefs redirect (trusted.overlay.redirect)
// is served from the object store: the object is looked up in each basedir
// in order, never outside it (no "..", no symlinks), and must be a regular
// file. Other files are served from the image itself (small files stored
// inline, empty files).
//
// Where the kernel supports FUSE passthrough (Linux 6.9) and the server may
// use it (it needs CAP_SYS_ADMIN), an object's open file is handed to the
// kernel, which then reads it without going through this process, at the
// speed of the file system beneath. Otherwise every read is a pread on the
// same open file. [Server.Passthrough] tells which.
//
// # Integrity
//
// With mount.VerityTry (the zero value) or mount.VerityRequire, an object
// is checked against the fs-verity digest its image entry records
// (trusted.overlay.metacopy) when it is opened, before anything of it is
// served: by FS_IOC_MEASURE_VERITY when the object has fs-verity enabled
// (the kernel then guarantees every read), otherwise by computing its
// fs-verity digest here, from the very file descriptor that is then
// served (and passed to the kernel for passthrough). The result is cached
// per object identity (device, inode number, size, mtime and ctime), so
// reopening an unchanged object costs one fstat. An object whose digest
// does not match cannot be opened (EIO) and the event is logged once per
// object. VerityRequire also refuses (EIO) every file whose content is in
// the object store but whose image entry has no digest; VerityOff checks
// nothing.
//
// Without fs-verity on the objects, the check covers what the object held
// when it was opened. A file of the store modified in place afterwards (its
// mtime and ctime change) is checked again at its next open, but readers
// that had it open before, and pages already cached, keep what they see.
// Object stores are meant to be immutable (gocfs and mkcomposefs write
// objects once, under their digest); with fs-verity enabled they are, and
// the check is complete.
//
// With Options.ExpectedDigest the image itself is checked before anything
// is served: by FS_IOC_MEASURE_VERITY when it has fs-verity, otherwise by
// copying it into a private memfd sealed against any change and computing
// the digest of the copy, which is then what the server reads (so the bytes
// checked are the bytes served; the copy takes as much memory as the image
// is large).
//
// Before the mount is made, the image passes the structural check
// (mount.CheckImage) unless Options.NoVerify is set, and, either way, its
// root directory's entries and xattrs must read: the kernel asks for them
// first, and a mount that cannot answer would be left dead. Should go-fuse's
// own check of the new mount fail all the same, the mount is removed again:
// a failed Mount leaves nothing mounted.
//
// # Privileges
//
// As root the file system is mounted directly (nodev and nosuid unless
// Options.AllowDevices or AllowSetuid says otherwise); other users mount
// through the setuid helper fusermount3 (Debian package fuse3), which
// always adds nosuid and nodev. The mount is read-only and permission
// checks are the kernel's (default_permissions), on the modes, owners and,
// for images that carry them, POSIX ACLs of the image.
// Options.FUSE.AllowOther lets other users in (for a non-root mounter,
// /etc/fuse.conf must have user_allow_other).
//
// The serving process must not itself execute a program from its own
// mount (os/exec of a file it serves): the Go runtime's fork may then wait
// for the server and the server for the fork. Run it through another
// program (a shell) or from another process.
package fuse
