package scan

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The digest cache's large buffers (the file's bytes and its slots, and
// the bytes Save writes) live in memory mapped outside the Go heap and
// asked for in huge pages, when the kernel gives them (transparent huge
// pages "madvise", as Debian's default is). On a virtual machine the
// first touch of each 4 KiB page of fresh memory is dear: on the 2-core VM
// of bench/RESULTS.md, reading an 11 MB cache file into a new heap buffer
// and checksumming it took 100 ms, in 2 MB pages 9 ms.
const (
	mappedMin = 1 << 20 // smaller buffers are made on the heap
	hugePage  = 2 << 20
)

// mappings are the memory a DigestCache mapped, unmapped by release or,
// once the cache is unreachable, by a cleanup. Nothing mapped is handed
// out of the cache: what leaves it is copied.
type mappings [][]byte

// alloc returns n zero bytes, mapped and recorded in ms when n is large
// and the mapping succeeds, else made on the heap.
func (ms *mappings) alloc(n int) []byte {
	if n < mappedMin {
		return make([]byte, n)
	}
	m, err := unix.Mmap(-1, 0, n+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n)
	}
	*ms = append(*ms, m)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (hugePage - 1))
	b := m[off : off+n : off+n]
	// Only advice: without huge pages the memory is as good, and slower.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b
}

// release unmaps every mapping of ms; nothing may use them after.
func (ms *mappings) release() {
	for _, m := range *ms {
		_ = unix.Munmap(m)
	}
	*ms = nil
}

// allocSlots returns n zero slots, mapped like alloc.
func (ms *mappings) allocSlots(n int) []uint64 {
	b := ms.alloc(8 * n)
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// newMappings returns the mappings of c, released when c is unreachable.
func newMappings(c *DigestCache) *mappings {
	ms := new(mappings)
	runtime.AddCleanup(c, (*mappings).release, ms)
	return ms
}
