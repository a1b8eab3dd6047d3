// Package hugepages asks the kernel for transparent huge pages (2 MB) for
// memory that is large and touched once: with THP in "madvise" mode (as
// Debian's default is), memory gets them only when advised, and the Go
// runtime advises none of its heap.
//
// The first touch of each 4 KiB page of fresh memory is a page fault; on
// a virtual machine one is dear. On the 2-core VM of bench/RESULTS.md,
// reading an 11 MB file into a new buffer and checksumming it took 100 ms
// in 4 KiB pages and 9 ms in huge ones, and a cached `mkcomposefs /usr`
// spent most of its system time faulting in the 31,000 pages of its heap.
//
// Everything here is advice: where the kernel gives no huge pages, the
// memory is as good, and slower.
package hugepages

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// Size is the huge page size advised for (x86-64's and arm64's
	// usual one; where it is larger the advice still holds).
	Size = 2 << 20
	// sliceMin is the size from which Slice advises: smaller slices are
	// made as usual.
	sliceMin = 1 << 20
)

// Slice returns n zero elements, in huge pages where it can: made one
// huge page larger, the slice starts at a huge page boundary and the
// kernel is advised before anything touches it (a large object the Go
// heap takes fresh from the kernel is not zeroed by the runtime: the
// first touch is the caller's). It stays in the Go heap: the garbage
// collector frees it, and paces itself by it.
func Slice[T any](n int) []T {
	size := int(unsafe.Sizeof(*new(T)))
	if n*size < sliceMin {
		return make([]T, n)
	}
	s := make([]T, n+Size/size)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	off := int(-p&(Size-1)) / size
	s = s[off : off+n : off+n]
	advise(unsafe.Pointer(unsafe.SliceData(s)), n*size)
	return s
}

// AdviseHeap advises n bytes of address space for huge pages and hands
// them to the Go heap: it allocates them (fresh from the kernel, not
// touched), advises the kernel, and drops them, so that the heap's next
// growth reuses that space, and each first touch of 2 MB faults in one
// huge page instead of 512 small ones. Nothing becomes resident until
// used. For a short process that builds a large heap once (the gocfs
// command's builds and pulls); a long-running one whose heap shrinks and
// grows may keep more memory resident than it uses.
func AdviseHeap(n int) {
	if n < Size {
		return
	}
	b := make([]byte, n+Size)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	off := int(-p & (Size - 1))
	advise(unsafe.Pointer(&b[off]), n)
}

// advise advises the whole huge pages of the n bytes at p.
func advise(p unsafe.Pointer, n int) {
	if n &^= Size - 1; n > 0 {
		_ = unix.Madvise(unsafe.Slice((*byte)(p), n), unix.MADV_HUGEPAGE)
	}
}
