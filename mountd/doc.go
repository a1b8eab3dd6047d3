// Package mountd lets unprivileged users mount composefs images the
// kernel reads, through a privileged service that mounts only what it
// checked: the service of "gocfs mountd" ([Service]), its client
// ([Client], [Attach]), its policy ([Policy]) and its admission rule
// ([Admit]).
//
// The kernel lets no ordinary user mount a file system image, because a
// crafted one can crash it. The service, running as root, takes a request
// on a Unix socket (varlink interface io.gocfs.MountImage, the shape of
// systemd's io.systemd.MountFileSystem and composefs-rs's varlink Mount):
// it checks the caller's credentials (SO_PEERCRED) against the policy,
// reads the image the caller names (a descriptor passed with the call,
// read with the caller's own access to it, or an image of a repository
// the policy serves) into a sealed private copy, admits the copy or
// refuses it, mounts it detached (EROFS + overlayfs with the policy's
// object store as the only data layer, read-only, nodev, nosuid,
// verity=require where the store has fs-verity, id-mapped to the caller's
// user namespace when asked) and passes the mount's file descriptor back
// (SCM_RIGHTS). The caller attaches it with move_mount(2) in a user and
// mount namespace of its own.
//
// # Admission
//
// An image is admitted when it passes the verifier (package verify, which
// also requires every redirect to name an object by its digest, so that
// none leads out of the store), has no device node other than overlayfs
// whiteouts, and is canonical: package image, writing the tree read from
// it, reproduces it byte for byte. That last rule defines the class of
// images the kernel is given precisely: nothing in them that gocfs's
// writer would not have put there.
//
// # Usage
//
// Serving (as root):
//
//	p, err := mountd.LoadPolicy(mountd.DefaultPolicyFile)
//	…
//	svc, err := mountd.NewService(p)
//	l, err := mountd.Listen(mountd.DefaultSocket) // or the socket systemd passed
//	err = svc.Serve(ctx, l)
//
// Asking (in a process that owns its user and mount namespaces, as after
// unshare -U -m -r):
//
//	c, err := mountd.Dial(ctx, mountd.DefaultSocket)
//	…
//	mnt, reply, err := c.Mount(ctx, mountd.MountSpec{Repository: "system", Name: "app"})
//	…
//	err = mountd.Attach(mnt, "/mnt/app")
//
// Refusals are [*Refusal] values whose Reason says why, wrapping one of
// [ErrPermissionDenied], [ErrImageRefused], [ErrLimitReached],
// [ErrBadRequest] or [ErrMountFailed]. docs/mountd.md has the protocol,
// the policy file and the security argument.
package mountd
