//go:build !linux

package boot

import "errors"

// SetupRoot needs Linux (overlayfs, EROFS, mount(2)); elsewhere it fails.
func SetupRoot(o Options) (*Result, error) {
	return nil, stepErr(StepImage, errors.New("boot: setup-root needs Linux"))
}
