package mountd

import (
	"errors"
	"fmt"
)

// InterfaceName is the varlink interface the service implements.
const InterfaceName = "io.gocfs.MountImage"

// DefaultSocket is where the service listens unless told otherwise (the
// path of contrib/systemd/gocfs-mountd.socket).
const DefaultSocket = "/run/gocfs/mountd.socket"

// interfaceDescription is the varlink IDL of [InterfaceName], which
// org.varlink.service.GetInterfaceDescription returns.
const interfaceDescription = `# Mounts verified composefs images for unprivileged callers: the image is
# checked (structure and canonical form), mounted detached (EROFS +
# overlayfs, read-only, nodev, nosuid) and returned as a mount file
# descriptor that the caller attaches with move_mount(2).
interface io.gocfs.MountImage

# Mount one image. Name it either by a file descriptor passed with the call
# (imageFileDescriptor, an index into the call's descriptors) or by
# repository and image (a repository of the policy, a reference or digest
# in it). store names the object store (a store of the policy, by name or
# path) for an image passed by descriptor; a repository's image uses the
# repository's store. userNamespaceFileDescriptor (an index) asks for a
# mount id-mapped to that user namespace, which the caller must own.
# verity is "try" (default), "require" or "off". expectedDigest, when
# given, is the fs-verity (SHA-256, hex) digest the image must have.
method Mount(
  imageFileDescriptor: ?int,
  repository: ?string,
  image: ?string,
  store: ?string,
  userNamespaceFileDescriptor: ?int,
  verity: ?string,
  expectedDigest: ?string
) -> (
  mountFileDescriptor: int,
  digest: string,
  notices: ?[]string
)

# The caller is not allowed by the policy.
error PermissionDenied(reason: string)
# The image is not admissible: the verifier refused it, it is not
# canonical, or it is not a usable file.
error ImageRefused(reason: string)
# The caller is over one of its limits.
error LimitReached(reason: string)
# The request is malformed or names nothing the policy serves.
error BadRequest(reason: string)
# The kernel refused the mount.
error MountFailed(reason: string)
`

// The varlink errors of [InterfaceName]; each carries a reason.
const (
	ErrorPermissionDenied = InterfaceName + ".PermissionDenied"
	ErrorImageRefused     = InterfaceName + ".ImageRefused"
	ErrorLimitReached     = InterfaceName + ".LimitReached"
	ErrorBadRequest       = InterfaceName + ".BadRequest"
	ErrorMountFailed      = InterfaceName + ".MountFailed"
)

// Request is the parameters of the Mount method.
type Request struct {
	// ImageFD is the index, among the descriptors passed with the call,
	// of the image file. The client sets it.
	ImageFD *int `json:"imageFileDescriptor,omitempty"`
	// Repository and Image name an image of a repository the policy
	// serves, instead of a descriptor.
	Repository string `json:"repository,omitempty"`
	Image      string `json:"image,omitempty"`
	// Store names the object store (by name or path, as the policy has
	// it) of an image passed by descriptor; empty means the policy's
	// first store.
	Store string `json:"store,omitempty"`
	// UserNSFD is the index of a user namespace descriptor to id-map
	// the mount with. The client sets it.
	UserNSFD *int `json:"userNamespaceFileDescriptor,omitempty"`
	// Verity is "try", "require" or "off" ("" is "try").
	Verity string `json:"verity,omitempty"`
	// ExpectedDigest, when set, is the fs-verity (SHA-256, hex) digest
	// the image must have.
	ExpectedDigest string `json:"expectedDigest,omitempty"`
}

// Reply is the reply of the Mount method.
type Reply struct {
	// MountFD is the index of the mount descriptor among the reply's
	// descriptors (always 0).
	MountFD int `json:"mountFileDescriptor"`
	// Digest is the fs-verity (SHA-256) digest of the image mounted.
	Digest string `json:"digest"`
	// Notices are what the mount had to say about choices it made
	// (fs-verity not used under "try" and why, a loop device used).
	Notices []string `json:"notices,omitempty"`
}

// errorParams are the parameters of every error of [InterfaceName].
type errorParams struct {
	Reason string `json:"reason"`
}

// Sentinel errors a [*Refusal] wraps, one per varlink error, for
// errors.Is on either side of the socket.
var (
	ErrPermissionDenied = errors.New("mountd: permission denied")
	ErrImageRefused     = errors.New("mountd: image refused")
	ErrLimitReached     = errors.New("mountd: limit reached")
	ErrBadRequest       = errors.New("mountd: bad request")
	ErrMountFailed      = errors.New("mountd: mount failed")
)

// errorNames pairs each sentinel with its varlink error name.
var errorNames = map[error]string{
	ErrPermissionDenied: ErrorPermissionDenied,
	ErrImageRefused:     ErrorImageRefused,
	ErrLimitReached:     ErrorLimitReached,
	ErrBadRequest:       ErrorBadRequest,
	ErrMountFailed:      ErrorMountFailed,
}

// Refusal is a request the service refused, with why. Kind is one of the
// sentinel errors (ErrPermissionDenied…), which errors.Is finds.
type Refusal struct {
	Kind   error
	Reason string
}

// Error returns the kind and the reason.
func (r *Refusal) Error() string { return fmt.Sprintf("%v: %s", r.Kind, r.Reason) }

// Unwrap returns Kind.
func (r *Refusal) Unwrap() error { return r.Kind }

// refuse makes a *Refusal of kind with a formatted reason.
func refuse(kind error, format string, a ...any) *Refusal {
	return &Refusal{Kind: kind, Reason: fmt.Sprintf(format, a...)}
}

// refusalFromVarlink turns a varlink error name and reason back into a
// *Refusal, or nil for a name that is none of this interface's.
func refusalFromVarlink(name, reason string) *Refusal {
	for kind, n := range errorNames {
		if n == name {
			return &Refusal{Kind: kind, Reason: reason}
		}
	}
	return nil
}
