package scan

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// statAt (statx) gives the very fields lstat gives, for every file type.
func TestStatAtMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	mk := map[string]func(string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("hello"), 0o640) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o750) },
		"symlink": func(p string) error { return os.Symlink("file", p) },
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o600) },
	}
	if os.Geteuid() == 0 {
		mk["chardev"] = func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(4093, 70000))) }
	}
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	for name, f := range mk {
		if err := f(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		var got, want unix.Stat_t
		if _, err := statAt(dirfd, name, &got); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(dir, name), &want); err != nil {
			t.Fatal(err)
		}
		if got.Dev != want.Dev || got.Ino != want.Ino || got.Nlink != want.Nlink || got.Mode != want.Mode ||
			got.Uid != want.Uid || got.Gid != want.Gid || got.Rdev != want.Rdev || got.Size != want.Size ||
			got.Mtim != want.Mtim || got.Ctim != want.Ctim {
			t.Errorf("%s: statAt %+v, lstat %+v", name, got, want)
		}
	}
	if _, err := statAt(dirfd, "missing", new(unix.Stat_t)); err != unix.ENOENT {
		t.Errorf("missing file: %v, want ENOENT", err)
	}
}

// A file whose file system reports it has no fs-verity is not asked for a
// measurement; where the file system can't tell, every file is asked.
func TestVerityAskedOnlyWhenPossible(t *testing.T) {
	dir := cacheTree(t, "a", "b", "c")
	var x unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, filepath.Join(dir, "a"), 0, unix.STATX_BASIC_STATS, &x); err != nil {
		t.Fatal(err)
	}
	reports := x.Attributes_mask&unix.STATX_ATTR_VERITY != 0
	var calls atomic.Int32
	old := measureVerity
	t.Cleanup(func() { measureVerity = old })
	measureVerity = func(fd int, name string) (fsverity.Algorithm, []byte, error) {
		calls.Add(1)
		return 0, nil, unix.ENODATA
	}
	if _, err := Dir(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	want := int32(3)
	if reports {
		want = 0
	}
	if calls.Load() != want {
		t.Errorf("measured %d files, want %d (file system reports fs-verity: %v)", calls.Load(), want, reports)
	}
	for _, c := range []struct{ attrs, mask uint64 }{{0, 0}, {0, unix.STATX_ATTR_VERITY}, {unix.STATX_ATTR_VERITY, unix.STATX_ATTR_VERITY}} {
		if got := mayHaveVerity(c.attrs, c.mask); got != (c.mask == 0 || c.attrs != 0) {
			t.Errorf("mayHaveVerity(%x, %x) = %v", c.attrs, c.mask, got)
		}
	}
}

// Files on both sides of every size threshold (inlined, hashed by the
// walk, by a digest worker, by several workers) get the digest of their
// content, and a directory too large for one getdents buffer is read
// whole.
func TestDigestSizes(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{1, 64, 65, 4095, 4096, 4097, inlineDigestMax, inlineDigestMax + 1, readBufSize + 1, parallelMin + 4096 + 1}
	want := map[string][]byte{}
	for i, size := range sizes {
		data := bytes.Repeat([]byte{byte(i + 1), 0x5a, byte(size)}, size/3+1)[:size]
		name := fmt.Sprintf("f%02d-%d", i, size)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = fsverity.Sum(data, fsverity.SHA256)
	}
	var names []string
	for i := range 3000 {
		names = append(names, fmt.Sprintf("a-rather-long-file-name-to-fill-getdents-buffers-%04d", i))
		if err := os.WriteFile(filepath.Join(dir, names[i]), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := Dir(dir, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range want {
		n := root.Lookup(name)
		if n.Size <= 64 {
			if n.Content == nil {
				t.Errorf("%s: not inlined", name)
			}
			continue
		}
		if !bytes.Equal(n.Digest, d) {
			t.Errorf("%s: digest %x, want %x", name, n.Digest, d)
		}
		if want := fmt.Sprintf("%x/%x", d[:1], d[1:]); n.Payload != want || cap(n.Digest) != len(d) {
			t.Errorf("%s: payload %q (digest capacity %d), want %q", name, n.Payload, cap(n.Digest), want)
		}
	}
	var got []string
	for _, c := range root.Children {
		if c.Size == 0 {
			got = append(got, c.Name)
		}
	}
	sort.Strings(got)
	if len(got) != len(names) || got[0] != names[0] || got[len(got)-1] != names[len(names)-1] {
		t.Errorf("read %d of %d empty files", len(got), len(names))
	}
}
