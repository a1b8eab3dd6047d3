package scan

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The digest cache's large buffers (the file's bytes, its slots, the bytes
// Save writes) are asked for in huge pages, when the kernel gives them
// (transparent huge pages "madvise", as Debian's default is). On a virtual
// machine the first touch of each 4 KiB page of fresh memory is dear: on
// the 2-core VM of bench/RESULTS.md, reading an 11 MB cache file into a
// new buffer and checksumming it took 100 ms, in 2 MB pages 9 ms. They
// stay in the Go heap (the garbage collector frees them, and paces itself
// by them, as by the rest of the tree's memory).
const (
	hugeMin  = 1 << 20 // smaller buffers are made as usual
	hugePage = 2 << 20
)

// hugeSlice returns n zero elements, in huge pages where it can: made one
// huge page larger, the slice starts at a huge page boundary and the
// kernel is advised before anything touches it (a new large object of
// the Go heap is fresh from the kernel, and known to be zero).
func hugeSlice[T any](n int) []T {
	size := int(unsafe.Sizeof(*new(T)))
	if n*size < hugeMin {
		return make([]T, n)
	}
	s := make([]T, n+hugePage/size)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	off := int(-p&(hugePage-1)) / size
	s = s[off : off+n : off+n]
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), n*size&^(hugePage-1))
	// Only advice: without huge pages the memory is as good, and slower.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return s
}
