package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mountd"
)

// mountdChildEnv carries, as JSON, what the process "gocfs mount" starts
// in a new user and mount namespace is to do: ask gocfs mountd for the
// mount, attach it, run the command.
const mountdChildEnv = "GOCFS_MOUNTD_CHILD"

// mountdChildFailed is the exit code of that process when it could not
// get the mount (the parent then serves the image with FUSE).
const mountdChildFailed = 75

// mountdChild is what the child is told.
type mountdChild struct {
	Socket, Image, Target, Store, Verity, Digest string
	Command                                      []string
}

// mountdUsable tells whether "gocfs mount" should ask gocfs mountd for
// the mount: not root, no method forced, nothing only a root kernel mount
// has or the service never gives (devices, setuid, an unchecked image),
// and a service listening on socket.
func mountdUsable(socket string, opts *mount.Options) bool {
	if socket == "" || socket == "off" || os.Geteuid() == 0 || opts.Method != mount.Auto || opts.KernelOnly() != "" ||
		opts.AllowDevices || opts.AllowSetuid || opts.NoVerify {
		return false
	}
	fi, err := os.Stat(socket)
	return err == nil && fi.Mode().Type() == os.ModeSocket
}

// mountThroughMountd runs this program again in a new user and mount
// namespace (the caller mapped to root there), which asks gocfs mountd to
// mount image, attaches the mount on target and runs command (the user's
// shell when empty) with it. It returns done=false when the service did
// not mount (having said why on stderr), for the caller to fall back.
func mountThroughMountd(stderr io.Writer, socket, image, target string, opts *mount.Options, command []string) (done bool, err error) {
	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	spec := mountdChild{Socket: socket, Image: image, Target: target, Verity: opts.Verity.String(), Digest: opts.ExpectedDigest, Command: command}
	if len(opts.Basedirs) > 0 {
		spec.Store = opts.Basedirs[0]
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(self, "__mountd-attach")
	cmd.Env = append(os.Environ(), mountdChildEnv+"="+string(b))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == mountdChildFailed:
		return false, nil
	case errors.As(err, &ee):
		return true, exitCode(ee.ExitCode(), nil)
	}
	fmt.Fprintf(stderr, "gocfs: no user namespace for a mount through gocfs mountd: %v\n", err)
	return false, nil
}

func init() { registerCommand(newMountdAttachCmd) }

// newMountdAttachCmd is the hidden command the child runs.
func newMountdAttachCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__mountd-attach",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitCode(runMountdChild(os.Getenv(mountdChildEnv)), nil)
		},
	}
}

// runMountdChild is the child's work; it does not return when the
// command runs.
func runMountdChild(env string) int {
	var c mountdChild
	if err := json.Unmarshal([]byte(env), &c); err != nil {
		fmt.Fprintf(os.Stderr, "gocfs: __mountd-attach is started by gocfs mount (bad %s: %v)\n", mountdChildEnv, err)
		return mountdChildFailed
	}
	if err := mountdChildMount(&c); err != nil {
		fmt.Fprintf(os.Stderr, "gocfs: gocfs mountd did not mount %s: %v\n", c.Image, err)
		return mountdChildFailed
	}
	argv := c.Command
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
	}
	path, err := exec.LookPath(argv[0])
	if err == nil {
		err = syscall.Exec(path, argv, os.Environ())
	}
	fmt.Fprintf(os.Stderr, "gocfs: running %s: %v\n", argv[0], err)
	return 127
}

// mountdChildMount asks the service for the mount, id-mapped to this
// namespace, and attaches it.
func mountdChildMount(c *mountdChild) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := os.Open(c.Image)
	if err != nil {
		return err
	}
	defer img.Close()
	ns, err := os.Open("/proc/self/ns/user")
	if err != nil {
		return err
	}
	defer ns.Close()
	cl, err := mountd.Dial(ctx, c.Socket)
	if err != nil {
		return err
	}
	defer cl.Close()
	mnt, rep, err := cl.Mount(ctx, mountd.MountSpec{Image: img, Store: c.Store, UserNS: ns, Verity: c.Verity, ExpectedDigest: c.Digest})
	if err != nil {
		return err
	}
	defer mnt.Close()
	for _, n := range rep.Notices {
		fmt.Fprintf(os.Stderr, "gocfs: mountd: %s\n", n)
	}
	if err := mountd.Attach(mnt, c.Target); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gocfs: mounted %s on %s with the kernel through gocfs mountd (image %s), id-mapped, in a new user and mount namespace: it shows to the command run there\n", c.Image, c.Target, rep.Digest)
	return nil
}

// mountdFlag adds --mountd to the mount command.
func mountdFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "mountd", mountd.DefaultSocket, `when not root: ask the gocfs mountd service listening on this socket for a kernel mount ("off": never)`)
}
