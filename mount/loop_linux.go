//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// attachLoop sets up a free loop device over backing: read-only,
// auto-clearing (it goes away once nothing holds it open), with direct I/O
// when the backing file allows it, and 4096-byte blocks (the EROFS block
// size). name is recorded as the loop device's file name. The caller closes
// the returned device.
func attachLoop(backing *os.File, name string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("a loop device is needed to mount the image, but: %w (load the loop module: modprobe loop)", err)
	}
	defer ctl.Close()
	var lastErr error
	// Another process may take the free device between asking for it
	// and configuring it; then ask again.
	for range 16 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("finding a free loop device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				lastErr = err
				continue
			}
			return nil, fmt.Errorf("opening loop device: %w", err)
		}
		err = configureLoop(dev, backing, name)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free loop device: %w", lastErr)
}

func configureLoop(dev, backing *os.File, name string) error {
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: 4096}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], name)
	err := unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	if errors.Is(err, unix.EINVAL) {
		// Some kernels refuse direct I/O the backing file cannot do.
		cfg.Info.Flags &^= unix.LO_FLAGS_DIRECT_IO
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTTY):
		return &FeatureError{Feature: "LOOP_CONFIGURE", Since: "5.8", Err: err}
	case errors.Is(err, unix.EBUSY):
		return err
	}
	return fmt.Errorf("configuring loop device %s: %w", dev.Name(), err)
}

// detachLoop releases a loop device that no mount uses.
func detachLoop(dev *os.File) {
	unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
}
