//go:build !linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// Mount mounts the composefs image at the path image on target. composefs
// needs Linux: elsewhere it returns an error wrapping errors.ErrUnsupported.
func Mount(image, target string, opts Options) error {
	return unsupported()
}

// MountFile is [Mount] for an image that is already open. composefs needs
// Linux: elsewhere it returns an error wrapping errors.ErrUnsupported.
func MountFile(image *os.File, target string, opts Options) error {
	return unsupported()
}

// Unmount unmounts the composefs mount at target. composefs needs Linux:
// elsewhere it returns an error wrapping errors.ErrUnsupported.
func Unmount(target string) error {
	return unsupported()
}

// UnmountLazy detaches the mount at target. composefs needs Linux:
// elsewhere it returns an error wrapping errors.ErrUnsupported.
func UnmountLazy(target string) error {
	return unsupported()
}

func unsupported() error {
	return fmt.Errorf("composefs mounts need Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// VerifiedImage checks an image's fs-verity digest (see the Linux
// version). Sealed private copies need Linux: elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func VerifiedImage(f *os.File, name string, want []byte) (*os.File, int64, error) {
	return nil, 0, unsupported()
}

// MountDetached mounts an image without attaching it (see the Linux
// version). composefs needs Linux: elsewhere it returns an error wrapping
// errors.ErrUnsupported.
func MountDetached(image *os.File, opts Options) (*os.File, error) {
	return nil, unsupported()
}

// SealedCopy makes a sealed private copy of a file (see the Linux
// version). Sealed copies need Linux: elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func SealedCopy(f *os.File, name string, limit int64) (*os.File, int64, error) {
	return nil, 0, unsupported()
}
