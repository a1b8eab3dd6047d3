package verify_test

import (
	"bytes"
	"errors"
	"fmt"

	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/verify"
)

// Hostile-image bounds checked by TestHostileImages: every layer must
// finish within hostileTimeout and allocate at most
// hostileAllocFactor × image size + hostileAllocSlack bytes.
const (
	hostileTimeout     = 20 * time.Second
	hostileAllocFactor = 64
	hostileAllocSlack  = 24 << 20
)

// seedImages returns the real images the mutations start from.
func seedImages(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	paths, _ := filepath.Glob(goldenDir + "/*.img")
	more, _ := filepath.Glob("../erofs/testdata/*.img")
	for _, p := range append(paths, more...) {
		seeds[filepath.Base(p)] = readFile(t, p)
	}
	if len(seeds) < 10 {
		t.Fatal("seed images missing")
	}
	return seeds
}

// field is a numeric on-disk field worth corrupting.
type field struct {
	off  int64
	size int // 1, 2, 4 or 8 bytes
}

// fields lists the fields of the structures of a valid image: header,
// superblock, inodes, xattr headers, entries and shared ids, dirents and
// chunk indexes.
func fields(b []byte) []field {
	fs := []field{{0, 4}, {4, 4}, {8, 4}, {12, 4}}
	for _, f := range []field{{8, 4}, {12, 1}, {14, 2}, {16, 8}, {24, 8}, {36, 4}, {40, 4}, {44, 4}, {80, 4}, {86, 2}, {90, 1}, {91, 1}, {92, 4}} {
		fs = append(fs, field{erofs.SuperOffset + f.off, f.size})
	}
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fs
	}
	seen := map[uint64]bool{}
	todo := []uint64{img.RootNid()}
	for len(todo) > 0 && len(seen) < 5000 {
		nid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[nid] {
			continue
		}
		seen[nid] = true
		in, err := img.Inode(nid)
		if err != nil {
			continue
		}
		o := in.Offset
		fs = append(fs, field{o, 2}, field{o + 2, 2}, field{o + 4, 2}, field{o + 6, 2}, field{o + 16, 4})
		if in.Extended {
			fs = append(fs, field{o + 8, 8}, field{o + 44, 4})
		} else {
			fs = append(fs, field{o + 8, 4})
		}
		if area, size := in.XattrArea(); size > 0 {
			fs = append(fs, field{area + 4, 1})
			ids, _ := in.SharedXattrIDs()
			for i := range ids {
				fs = append(fs, field{area + 12 + 4*int64(i), 4})
			}
			xs, _ := in.InlineXattrs()
			for _, x := range xs {
				fs = append(fs, field{x.Offset, 1}, field{x.Offset + 1, 1}, field{x.Offset + 2, 2})
			}
		}
		if in.Layout == erofs.LayoutChunkBased {
			if meta, err := in.MetaSize(); err == nil {
				fs = append(fs, field{o + meta - 4, 4})
			}
		}
		if !in.IsDir() {
			continue
		}
		exts, _ := in.Extents()
		in.ReadDirBlocks(func(off int64, ents []erofs.DirEntry, err error) error {
			for i, e := range ents {
				for _, x := range exts {
					if off >= x.Logical && off < x.Logical+x.Length {
						d := x.Physical + off - x.Logical + int64(i)*erofs.DirentSize
						fs = append(fs, field{d, 8}, field{d + 8, 2}, field{d + 10, 1})
					}
				}
				todo = append(todo, e.Nid)
			}
			return nil
		})
	}
	return fs
}

// mutate applies 1 to 4 random corruptions to a copy of b: byte flips,
// and extreme or random values in the listed fields.
func mutate(rng *rand.Rand, b []byte, fs []field) []byte {
	b = bytes.Clone(b)
	for range 1 + rng.IntN(4) {
		if rng.IntN(3) == 0 || len(fs) == 0 {
			for range 1 + rng.IntN(8) {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
			continue
		}
		f := fs[rng.IntN(len(fs))]
		if f.off < 0 || f.off+int64(f.size) > int64(len(b)) {
			continue
		}
		var old uint64
		for i := f.size - 1; i >= 0; i-- {
			old = old<<8 | uint64(b[f.off+int64(i)])
		}
		max := uint64(1)<<(8*f.size) - 1
		if f.size == 8 {
			max = ^uint64(0)
		}
		var v uint64
		switch rng.IntN(8) {
		case 0:
			v = 0
		case 1:
			v = max
		case 2:
			v = max >> 1
		case 3:
			v = old + 1 + uint64(rng.IntN(64))
		case 4:
			v = old - 1 - uint64(rng.IntN(64))
		case 5:
			v = old * 2
		case 6:
			v = uint64(len(b)) / uint64(1+rng.IntN(64))
		default:
			v = rng.Uint64()
		}
		v &= max
		for i := range f.size {
			b[f.off+int64(i)] = byte(v >> (8 * i))
		}
	}
	return b
}

// walkFS reads everything through the io/fs view: every directory, every
// file's content (bounded), symlink and xattrs.
func walkFS(b []byte) error {
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	fsys := img.FS("")
	budget := int64(16 * len(b))
	buf := make([]byte, 32<<10)
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fsys.Xattrs(p)
		switch d.Type() {
		case fs.ModeSymlink:
			fsys.ReadLink(p)
			return nil
		case 0:
		default:
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		for budget > 0 {
			n, err := f.Read(buf[:min(int64(len(buf)), budget)])
			budget -= int64(n)
			if err != nil || n == 0 {
				break
			}
		}
		return nil
	})
}

// layers are the code under test: each must survive any input.
var layers = []struct {
	name string
	run  func(b []byte) error
}{
	{"image.Read", func(b []byte) error {
		_, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{})
		return err
	}},
	{"erofs.FS", walkFS},
	{"verify.Image", func(b []byte) error {
		_, err := verify.Image(bytes.NewReader(b), int64(len(b)), verify.Options{})
		return err
	}},
}

// runBounded runs fn on b in a goroutine, failing when it panics, takes
// longer than hostileTimeout, or allocates more than the bound.
func runBounded(t testing.TB, what string, b []byte, fn func([]byte) error) (alloc uint64) {
	t.Helper()
	type result struct {
		alloc uint64
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panic = recover()
			done <- r
		}()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r.err = fn(b)
		runtime.ReadMemStats(&m1)
		r.alloc = m1.TotalAlloc - m0.TotalAlloc
	}()
	select {
	case r := <-done:
		if r.panic != nil {
			t.Fatalf("%s panicked on a %d-byte image: %v", what, len(b), r.panic)
		}
		if r.err != nil && !errors.Is(r.err, fs.ErrInvalid) {
			t.Errorf("%s: error not wrapping fs.ErrInvalid: %v", what, r.err)
		}
		if limit := uint64(hostileAllocFactor*len(b) + hostileAllocSlack); r.alloc > limit {
			t.Errorf("%s allocated %d bytes for a %d-byte image (limit %d)", what, r.alloc, len(b), limit)
		}
		return r.alloc
	case <-time.After(hostileTimeout):
		os.WriteFile(filepath.Join(os.TempDir(), "gocfs-hang.img"), b, 0o644)
		t.Fatalf("%s did not finish within %v (image saved in %s)", what, hostileTimeout, os.TempDir())
	}
	return 0
}

// TestHostileImages mutates real images thousands of times and checks
// that the reader, the io/fs view and the verifier never panic, never
// hang, never allocate more than a bounded multiple of the image size,
// and fail only with errors wrapping fs.ErrInvalid. HOSTILE_N sets the
// number of mutations per seed image.
func TestHostileImages(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 10
	}
	if s := os.Getenv("HOSTILE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	seeds := seedImages(t)
	total, failed := 0, 0
	var maxRatio [3]float64
	for name, seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(len(seed))))
		fs := fields(seed)
		for i := range n {
			b := mutate(rng, seed, fs)
			for j, l := range layers {
				a := runBounded(t, fmt.Sprintf("%s on %s mutation %d", l.name, name, i), b, l.run)
				maxRatio[j] = max(maxRatio[j], float64(a)/float64(len(b)))
			}
			if _, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{}); err != nil {
				failed++
			}
			total++
			if t.Failed() {
				return
			}
		}
	}
	t.Logf("%d mutated images, %d refused by image.Read; max allocation/size: read %.1f, fs %.1f, verify %.1f",
		total, failed, maxRatio[0], maxRatio[1], maxRatio[2])
}

// TestHostileNotTrusted checks that the verifier flags what it can't
// trust: for mutated images that image.Read refuses, verify must report
// at least one problem.
func TestHostileNotTrusted(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 5
	}
	if s := os.Getenv("HOSTILE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for name, seed := range seedImages(t) {
		rng := rand.New(rand.NewPCG(7, uint64(len(seed))))
		fs := fields(seed)
		for range n {
			b := mutate(rng, seed, fs)
			_, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{})
			if err == nil {
				continue
			}
			r, verr := verify.Image(bytes.NewReader(b), int64(len(b)), verify.Options{})
			if verr != nil {
				t.Fatal(verr)
			}
			if r.OK {
				os.WriteFile(filepath.Join(t.TempDir(), "x.img"), b, 0o644)
				t.Errorf("%s: image.Read refuses a mutated image (%v) that verify passes", name, err)
			}
		}
	}
}
