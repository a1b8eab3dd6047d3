package hugepages

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// Slice gives zero elements at a huge page boundary when they fill a
// megabyte at least, and a plain slice otherwise.
func TestSlice(t *testing.T) {
	for _, n := range []int{0, 100, sliceMin/8 - 1, sliceMin / 8, 3<<20/8 + 5} {
		s := Slice[uint64](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("%d: len %d, cap %d", n, len(s), cap(s))
		}
		for i := range s {
			if s[i] != 0 {
				t.Fatalf("%d: element %d is %d", n, i, s[i])
			}
			s[i] = uint64(i)
		}
		if aligned := uintptr(unsafe.Pointer(unsafe.SliceData(s)))%Size == 0; n >= sliceMin/8 && !aligned {
			t.Errorf("%d elements not at a huge page boundary", n)
		}
	}
}

// After AdviseHeap, the process has a mapping of at least that size
// advised for huge pages (hg in smaps' VmFlags), and memory allocated
// after it works.
func TestAdviseHeap(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skip("the kernel has no transparent huge pages")
	}
	const n = 64 << 20
	AdviseHeap(n)
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	if got := largestAdvised(string(smaps)); got < n {
		t.Errorf("the largest mapping advised for huge pages has %d bytes, want %d or more", got, n)
	}
	b := make([]byte, 32<<20)
	for i := range b {
		b[i] = byte(i)
	}
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d", i)
		}
	}
	AdviseHeap(Size - 1) // too small: nothing
}

// largestAdvised returns the size of smaps' largest mapping with the hg
// flag.
func largestAdvised(smaps string) int {
	largest, size := 0, 0
	for _, line := range strings.Split(smaps, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "Size:":
			kb, _ := strconv.Atoi(f[1])
			size = kb << 10
		case len(f) > 0 && f[0] == "VmFlags:" && slices.Contains(f[1:], "hg"):
			largest = max(largest, size)
		}
	}
	return largest
}
