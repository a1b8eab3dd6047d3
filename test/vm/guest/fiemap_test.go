//go:build vmguest && linux

package guest

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// extent is the kernel's struct fiemap_extent.
type extent struct {
	Logical, Physical, Length uint64
	_                         [2]uint64
	Flags                     uint32
	_                         [3]uint32
}

const (
	fsIocFiemap    = 0xC020660B // _IOWR('f', 11, struct fiemap)
	fiemapFlagSync = 0x1
	// Extent flags that make the physical offset unusable for raw writes:
	// UNKNOWN, DELALLOC, ENCODED, DATA_ENCRYPTED, NOT_ALIGNED, DATA_INLINE,
	// DATA_TAIL, UNWRITTEN.
	fiemapExtentUnusable = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
)

// firstExtent returns the extent holding byte 0 of f, after syncing f.
func firstExtent(f *os.File) (extent, error) {
	var arg struct { // struct fiemap with room for one extent
		start, length                  uint64
		flags, mapped, count, reserved uint32
		ext                            [1]extent
	}
	arg.length = ^uint64(0)
	arg.flags = fiemapFlagSync
	arg.count = 1
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return extent{}, fmt.Errorf("FS_IOC_FIEMAP %s: %w", f.Name(), errno)
	}
	e := arg.ext[0]
	switch {
	case arg.mapped < 1:
		return e, fmt.Errorf("FS_IOC_FIEMAP %s: no extents", f.Name())
	case e.Logical != 0:
		return e, fmt.Errorf("FS_IOC_FIEMAP %s: first extent starts at logical %d", f.Name(), e.Logical)
	case e.Flags&fiemapExtentUnusable != 0:
		return e, fmt.Errorf("FS_IOC_FIEMAP %s: extent flags %#x", f.Name(), e.Flags)
	}
	return e, nil
}
