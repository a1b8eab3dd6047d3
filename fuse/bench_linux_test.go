//go:build linux

package fuse

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"golang.org/x/sys/unix"
)

// The benchmarks compare a FUSE mount with the kernel mount of the same
// image (run them as root):
//
//	go test -run '^$' -bench . -benchtime 20x ./fuse
//
// BenchmarkRead reads a 64 MiB file whose object is in the page cache;
// BenchmarkStatWalk walks a tree of some 11,000 entries as "ls -lR" does
// (readdir, lstat, and getxattr of the SELinux label and ACLs of every
// entry) or with lstat alone, cold (a fresh mount for each walk) and warm
// (the same mount again).

const benchBigSize = 64 << 20

var (
	benchOnce sync.Once
	benchFix  *fixture
)

// benchFixture is the sample tree plus a 64 MiB file and 20 directories
// of 500 small files and symlinks, with its image and object store.
func benchFixture(b *testing.B) *fixture {
	b.Helper()
	testutil.RequireRoot(b)
	requireFUSE(b)
	benchOnce.Do(func() {
		dir := tempDir(b)
		f := &fixture{src: filepath.Join(dir, "src"), img: filepath.Join(dir, "image.cfs"), store: filepath.Join(dir, "objects")}
		must(b, os.MkdirAll(f.store, 0o755))
		testutil.MakeSampleTree(b, f.src, testutil.DefaultSampleOptions())
		rng := rand.New(rand.NewPCG(1, 2))
		big := make([]byte, benchBigSize)
		for i := 0; i < len(big); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				big[i+j] = byte(v >> (8 * j))
			}
		}
		must(b, os.WriteFile(filepath.Join(f.src, "big"), big, 0o644))
		for d := range 20 {
			sub := filepath.Join(f.src, "walk", fmt.Sprintf("d%02d", d))
			must(b, os.MkdirAll(sub, 0o755))
			for i := range 500 {
				p := filepath.Join(sub, fmt.Sprintf("f%03d", i))
				if i%4 == 3 {
					must(b, os.Symlink(fmt.Sprintf("f%03d", i-1), p))
				} else {
					must(b, os.WriteFile(p, []byte(p[len(p)-12:]), 0o644))
				}
			}
		}
		testutil.Mkcomposefs(b, f.src, f.img, f.store, mkcomposefsFlags(testutil.DefaultSampleOptions())...)
		benchFix = f
	})
	if benchFix == nil {
		b.Fatal("no benchmark fixture")
	}
	return benchFix
}

// benchMount mounts the fixture's image on a fresh directory, with the
// kernel (kind "kernel") or with FUSE, and returns the directory and a
// function that unmounts it.
func benchMount(b *testing.B, f *fixture, kind string) (string, func()) {
	b.Helper()
	dir, err := os.MkdirTemp("", "gocfs-bench-mnt-")
	must(b, err)
	if kind == "kernel" {
		if err := mount.Mount(f.img, dir, mount.Options{Basedirs: []string{f.store}}); err != nil {
			os.Remove(dir)
			var fe *mount.FeatureError
			if errors.As(err, &fe) {
				b.Skipf("no kernel mount to compare with: %v", err)
			}
			b.Fatal(err)
		}
		return dir, func() { must(b, mount.Unmount(dir)); os.Remove(dir) }
	}
	srv, err := Mount(f.img, dir, mount.Options{Basedirs: []string{f.store}, FUSE: mount.FUSEOptions{NoPassthrough: kind == "fuse-nopassthrough"}, Notice: func(string) {}})
	if err != nil {
		os.Remove(dir)
		b.Fatal(err)
	}
	if kind == "fuse" && !srv.Passthrough() {
		b.Logf("FUSE passthrough not available here")
	}
	return dir, func() { must(b, srv.Unmount()); os.Remove(dir) }
}

func BenchmarkRead(b *testing.B) {
	f := benchFixture(b)
	for _, kind := range []string{"kernel", "fuse", "fuse-nopassthrough"} {
		b.Run(kind, func(b *testing.B) {
			dir, unmount := benchMount(b, f, kind)
			defer unmount()
			p := filepath.Join(dir, "big")
			buf := make([]byte, 1<<20)
			read := func() {
				h, err := os.Open(p)
				must(b, err)
				defer h.Close()
				if kind == "fuse-nopassthrough" {
					// Without passthrough the FUSE mount has a page
					// cache of its own: drop it, so that the reads
					// go through the server (the object stays in the
					// page cache, as for the others).
					must(b, unix.Fadvise(int(h.Fd()), 0, 0, unix.FADV_DONTNEED))
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{h}, buf)
				must(b, err)
				if n != benchBigSize {
					b.Fatalf("read %d bytes, want %d", n, benchBigSize)
				}
			}
			read() // checks the object, fills the page cache
			b.SetBytes(benchBigSize)
			b.ResetTimer()
			for range b.N {
				read()
			}
		})
	}
}

// statWalk does to the tree at dir what "ls -lR" (GNU coreutils 9) does:
// it reads every directory, and lstats every entry and asks for its
// SELinux label and POSIX ACLs (with xattrs set) or does nothing more
// ("find -ls"). It returns the number of entries.
func statWalk(b *testing.B, dir string, xattrs bool) int {
	n := 0
	var walk func(string)
	buf := make([]byte, 256)
	walk = func(d string) {
		h, err := os.Open(d)
		must(b, err)
		names, err := h.Readdirnames(-1)
		h.Close()
		must(b, err)
		for _, name := range names {
			p := d + "/" + name
			var st unix.Stat_t
			must(b, unix.Lstat(p, &st))
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			if xattrs {
				unix.Lgetxattr(p, "security.selinux", buf)
				if st.Mode&unix.S_IFMT != unix.S_IFLNK {
					unix.Getxattr(p, "system.posix_acl_access", nil)
					if isDir {
						unix.Getxattr(p, "system.posix_acl_default", nil)
					}
				}
			}
			n++
			if isDir && st.Mode&0o500 == 0o500 {
				walk(p)
			}
		}
	}
	walk(dir)
	return n
}

func BenchmarkStatWalk(b *testing.B) {
	f := benchFixture(b)
	for _, walk := range []string{"ls-lR", "stat"} {
		xattrs := walk == "ls-lR"
		for _, kind := range []string{"kernel", "fuse"} {
			b.Run(walk+"/"+kind+"/cold", func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					dir, unmount := benchMount(b, f, kind)
					b.StartTimer()
					n := statWalk(b, dir, xattrs)
					b.StopTimer()
					unmount()
					b.ReportMetric(float64(n), "entries")
					b.StartTimer()
				}
			})
			b.Run(walk+"/"+kind+"/warm", func(b *testing.B) {
				dir, unmount := benchMount(b, f, kind)
				defer unmount()
				statWalk(b, dir, xattrs)
				b.ResetTimer()
				for range b.N {
					statWalk(b, dir, xattrs)
				}
			})
		}
	}
}
