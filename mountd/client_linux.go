package mountd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/varlink/go/varlink"
	"golang.org/x/sys/unix"
)

// Client is a connection to the service.
type Client struct {
	conn *varlink.Connection
}

// Dial connects to the service listening on the Unix socket at path
// ([DefaultSocket] when empty).
func Dial(ctx context.Context, path string) (*Client, error) {
	if path == "" {
		path = DefaultSocket
	}
	c, err := varlink.NewConnection(ctx, "unix:"+path)
	if err != nil {
		return nil, fmt.Errorf("mountd: connecting to %s: %w", path, err)
	}
	return &Client{conn: c}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// MountSpec says which image to mount and how.
type MountSpec struct {
	// Image is the image file, passed to the service as a descriptor
	// (the service reads it with the caller's access to it). Or name it
	// with Repository and Name.
	Image *os.File
	// Repository and Name name an image in a repository the service's
	// policy serves (a reference, or the image's digest).
	Repository, Name string
	// Store names the object store of Image (a store of the policy, by
	// name or path); empty means the policy's first.
	Store string
	// UserNS, when not nil, asks for a mount id-mapped with this user
	// namespace (one the caller owns; typically /proc/self/ns/user).
	UserNS *os.File
	// Verity is "try" (also ""), "require" or "off".
	Verity string
	// ExpectedDigest, when set, is the fs-verity (SHA-256, hex) digest
	// the image must have; the service refuses another.
	ExpectedDigest string
}

// Mount asks the service to mount the image spec names, and returns the
// detached mount (attach it with [Attach], or read it through the file
// with openat) and the service's reply. A refusal is a *[Refusal] that
// says why, wrapping one of ErrPermissionDenied, ErrImageRefused,
// ErrLimitReached, ErrBadRequest or ErrMountFailed.
func (c *Client) Mount(ctx context.Context, spec MountSpec) (*os.File, *Reply, error) {
	req := Request{Repository: spec.Repository, Image: spec.Name, Store: spec.Store, Verity: spec.Verity, ExpectedDigest: spec.ExpectedDigest}
	var fds []*os.File
	if spec.Image != nil {
		req.ImageFD = ptr(len(fds))
		fds = append(fds, spec.Image)
	}
	if spec.UserNS != nil {
		req.UserNSFD = ptr(len(fds))
		fds = append(fds, spec.UserNS)
	}
	var rep Reply
	got, err := c.conn.CallWithFDs(ctx, InterfaceName+".Mount", &req, &rep, fds)
	if err != nil {
		closeFiles(got)
		return nil, nil, callError(err)
	}
	if len(got) != 1 || rep.MountFD != 0 {
		closeFiles(got)
		return nil, nil, fmt.Errorf("mountd: the reply carries %d descriptors, want the mount's", len(got))
	}
	return got[0], &rep, nil
}

func ptr(i int) *int { return &i }

// callError turns a varlink error of this interface into a *Refusal.
func callError(err error) error {
	var ve *varlink.Error
	if errors.As(err, &ve) {
		var p errorParams
		if raw, ok := ve.Parameters.(*json.RawMessage); ok && raw != nil {
			json.Unmarshal(*raw, &p)
		}
		if r := refusalFromVarlink(ve.Name, p.Reason); r != nil {
			return r
		}
	}
	return fmt.Errorf("mountd: %w", err)
}

// Attach attaches the detached mount mnt (from [Client.Mount]) on target
// in the caller's mount namespace (move_mount(2)). That needs
// CAP_SYS_ADMIN over the mount namespace: an unprivileged caller first
// makes a user and mount namespace of its own (unshare -U -m), and the
// mount shows there only.
func Attach(mnt *os.File, target string) error {
	err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("attaching the mount on %s: %w (attaching needs a mount namespace of one's own: run in unshare -U -m)", target, err)
		}
		return fmt.Errorf("attaching the mount on %s: %w", target, err)
	}
	return nil
}
