//go:build linux

package mount

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	code := testutil.Main(m)
	if sampleDir != "" {
		os.RemoveAll(sampleDir)
	}
	os.Exit(code)
}

// fixture is a sample tree, its image and its object store.
type fixture struct {
	src, img, store string
}

var (
	sampleMu    sync.Mutex
	sampleCache = map[testutil.SampleOptions]*fixture{}
	sampleDir   string
)

// sample returns the image of a sample tree made with opts, built once per
// test process (the tests only read it).
func sample(t *testing.T, opts testutil.SampleOptions) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	sampleMu.Lock()
	defer sampleMu.Unlock()
	if f, ok := sampleCache[opts]; ok {
		return f
	}
	if sampleDir == "" {
		d, err := os.MkdirTemp("", "gocfs-mount-test-")
		if err != nil {
			t.Fatal(err)
		}
		sampleDir = d
	}
	dir, err := os.MkdirTemp(sampleDir, "sample-")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{src: filepath.Join(dir, "src"), img: filepath.Join(dir, "image.cfs"), store: filepath.Join(dir, "objects")}
	if err := os.MkdirAll(f.store, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.MakeSampleTree(t, f.src, opts)
	testutil.Mkcomposefs(t, f.src, f.img, f.store, mkcomposefsFlags(opts)...)
	sampleCache[opts] = f
	return f
}

// mkcomposefsFlags are the builder flags that keep what opts puts in the
// tree.
func mkcomposefsFlags(opts testutil.SampleOptions) []string {
	if opts.Hardlinks && testutil.MkcomposefsName() == "gocfs" {
		return []string{"--preserve-hardlinks"}
	}
	return nil
}

// compareOptions are the comparison options for a mount of an image made
// with opts.
func compareOptions(opts testutil.SampleOptions) testutil.CompareOptions {
	return testutil.CompareOptions{
		Hardlinks:          opts.Hardlinks && testutil.MkcomposefsName() == "gocfs",
		ComposefsWhiteouts: true,
	}
}

// target returns a fresh mount point, unmounted (lazily) at the end of the
// test if a test left something there.
func target(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, dir) {
			if err := UnmountLazy(dir); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	return dir
}

func mustMount(t *testing.T, img, dir string, opts Options) {
	t.Helper()
	if err := Mount(img, dir, opts); err != nil {
		skipIfMissing(t, err)
		t.Fatalf("Mount(%s, %s, %+v): %v", img, dir, opts, err)
	}
}

// skipIfMissing skips the test when err says the kernel lacks a feature.
func skipIfMissing(t *testing.T, err error) {
	t.Helper()
	var fe *FeatureError
	if errors.As(err, &fe) {
		t.Skipf("kernel feature missing: %v", err)
	}
}

func mustUnmount(t *testing.T, dir string) {
	t.Helper()
	if err := Unmount(dir); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if testutil.IsMountPoint(t, dir) {
		t.Fatalf("%s still mounted after Unmount", dir)
	}
}

// loopBackings returns the backing files of the loop devices in use.
func loopBackings(t *testing.T) map[string]string {
	t.Helper()
	res := map[string]string{}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			res[strings.Split(f, "/")[3]] = strings.TrimSpace(string(b))
		}
	}
	return res
}

// erofsMounts counts the EROFS mounts in the mount table.
func erofsMounts(t *testing.T) int {
	n := 0
	for _, m := range testutil.Mounts(t) {
		if m.FSType == "erofs" {
			n++
		}
	}
	return n
}

func TestMountMatchesSource(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	t.Logf("images built with %s", testutil.MkcomposefsName())
	cases := []struct {
		name string
		set  func(*Options)
	}{
		{"file-backed", func(*Options) {}},
		{"loop", func(o *Options) { o.forceLoop = true }},
		{"tmpdir", func(o *Options) { o.forceTmpdir = true }},
		{"legacy", func(o *Options) { o.forceLegacy = true }},
		{"loop+legacy", func(o *Options) { o.forceLoop, o.forceLegacy = true, true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := target(t)
			erofsBefore := erofsMounts(t)
			loopsBefore := loopBackings(t)
			var notices []string
			opts := Options{Basedirs: []string{f.store}, Notice: func(m string) { notices = append(notices, m) }}
			c.set(&opts)
			mustMount(t, f.img, dir, opts)
			for _, n := range notices {
				t.Logf("notice: %s", n)
			}

			mi := testutil.MountAt(t, dir)
			if mi == nil || mi.FSType != "overlay" || mi.Source != "composefs" {
				t.Fatalf("mount table entry for %s: %+v, want overlay from composefs", dir, mi)
			}
			t.Logf("mounted: %s %s", mi.Options, mi.SuperOpts)
			if !strings.Contains(","+mi.Options+",", ",ro,") {
				t.Errorf("mount options %q, want ro", mi.Options)
			}
			if n := erofsMounts(t); n != erofsBefore {
				t.Errorf("%d EROFS mounts in the mount table, had %d: the image mount must stay hidden", n, erofsBefore)
			}
			loops := loopBackings(t)
			var ours []string
			for dev, backing := range loops {
				if _, ok := loopsBefore[dev]; !ok && strings.Contains(backing, filepath.Base(f.img)) {
					ours = append(ours, dev)
				}
			}
			if opts.forceLoop && len(ours) != 1 {
				t.Errorf("forced loop device: new loop devices over the image: %v (all: %v)", ours, loops)
			}
			for _, dev := range ours {
				attr := func(name string) string {
					b, _ := os.ReadFile(filepath.Join("/sys/block", dev, name))
					return strings.TrimSpace(string(b))
				}
				if attr("ro") != "1" || attr("loop/autoclear") != "1" {
					t.Errorf("loop device %s: ro=%s autoclear=%s, want both 1", dev, attr("ro"), attr("loop/autoclear"))
				}
				t.Logf("loop device %s: direct I/O %s", dev, attr("loop/dio"))
			}

			testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))

			if err := os.WriteFile(filepath.Join(dir, "new-file"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("writing into a read-only composefs mount: %v, want EROFS", err)
			}

			mustUnmount(t, dir)
			if len(ours) > 0 {
				waitLoopsGone(t, ours)
			}
		})
	}
}

// waitLoopsGone checks that the loop devices devs are released (they are
// auto-clearing; the kernel releases them shortly after the unmount).
func waitLoopsGone(t *testing.T, devs []string) {
	t.Helper()
	for range 500 { // up to 10s on a loaded machine
		left := 0
		loops := loopBackings(t)
		for _, d := range devs {
			if _, ok := loops[d]; ok {
				left++
			}
		}
		if left == 0 {
			return
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
	}
	t.Errorf("loop devices %v still attached after unmount", devs)
}

func TestMountACLs(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	sopts.ACLs = true
	f := sample(t, sopts)
	hdr, err := os.ReadFile(f.img)
	if err != nil {
		t.Fatal(err)
	}
	if hdr[8]&1 == 0 {
		t.Fatalf("image of a tree with ACLs lacks the ACL flag (header flags %#x)", hdr[8])
	}
	dir := target(t)
	mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}})
	defer mustUnmount(t, dir)
	testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))
	if _, err := unix.Lgetxattr(filepath.Join(dir, "acl/file"), "system.posix_acl_access", make([]byte, 256)); err != nil {
		t.Errorf("ACL not visible through the mount: %v", err)
	}
}

func TestMountNoACLs(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	hdr, err := os.ReadFile(f.img)
	if err != nil {
		t.Fatal(err)
	}
	if hdr[8]&1 != 0 {
		t.Fatalf("image of a tree without ACLs has the ACL flag")
	}
	// The EROFS mount gets noacl: set an ACL-looking xattr query and
	// expect none.
	dir := target(t)
	mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}})
	defer mustUnmount(t, dir)
	if _, err := unix.Lgetxattr(filepath.Join(dir, sizeName(100)), "system.posix_acl_access", make([]byte, 256)); err == nil {
		t.Errorf("unexpected ACL on a file of an image without ACLs")
	}
}

func sizeName(n int) string { return fmt.Sprintf("size-%07d", n) }

// snapshot records every entry under dir with its mode, size, mtime and
// content hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	res := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		res[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameSnapshot(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for p, v := range a {
		if b[p] != v {
			t.Errorf("%s changed: %s: %q, now %q", what, p, v, b[p])
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s changed: %s appeared", what, p)
		}
	}
}

func TestMountUpperdir(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	base := t.TempDir()
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	storeBefore := snapshot(t, f.store)
	imgBefore := snapshot(t, filepath.Dir(f.img))
	dir := target(t)
	for _, legacy := range []bool{false, true} {
		opts := Options{Basedirs: []string{f.store}, UpperDir: upper, WorkDir: work, forceLegacy: legacy}
		mustMount(t, f.img, dir, opts)
		mi := testutil.MountAt(t, dir)
		if mi == nil || !strings.HasPrefix(mi.Options, "rw") {
			t.Errorf("writable mount: mount table entry %+v, want rw", mi)
		}
		if !legacy {
			// The root is a merged directory, whose attributes come from
			// upperdir.
			copts := compareOptions(sopts)
			copts.IgnoreRoot = true
			testutil.CompareTrees(t, f.src, dir, copts)
			// A new file, a changed external file, a changed inline file,
			// a removed file, a new directory.
			must(t, os.WriteFile(filepath.Join(dir, "new-file"), []byte("new content"), 0o644))
			must(t, os.WriteFile(filepath.Join(dir, sizeName(100000)), []byte("overwritten"), 0o644))
			fh, err := os.OpenFile(filepath.Join(dir, sizeName(4096)), os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = fh.Write([]byte("appended"))
			must(t, err)
			must(t, fh.Close())
			must(t, os.Remove(filepath.Join(dir, sizeName(65536))))
			must(t, os.Mkdir(filepath.Join(dir, "new-dir"), 0o755))
			must(t, os.Chmod(filepath.Join(dir, sizeName(64)), 0o600))
		}
		mustUnmount(t, dir)
	}

	// The changes are in upperdir.
	readUpper := func(name string) string {
		b, err := os.ReadFile(filepath.Join(upper, name))
		if err != nil {
			t.Errorf("upperdir: %v", err)
		}
		return string(b)
	}
	if got := readUpper("new-file"); got != "new content" {
		t.Errorf("upperdir new-file = %q", got)
	}
	if got := readUpper(sizeName(100000)); got != "overwritten" {
		t.Errorf("upperdir %s = %q", sizeName(100000), got)
	}
	src, _ := os.ReadFile(filepath.Join(f.src, sizeName(4096)))
	if got := readUpper(sizeName(4096)); got != string(src)+"appended" {
		t.Errorf("upperdir %s: %d bytes, want the original and 8 more", sizeName(4096), len(got))
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, sizeName(65536)), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upperdir: no whiteout for the removed file (%v, %+v)", err, st)
	}
	if fi, err := os.Stat(filepath.Join(upper, "new-dir")); err != nil || !fi.IsDir() {
		t.Errorf("upperdir: new-dir: %v", err)
	}

	// The store and the image are untouched.
	sameSnapshot(t, "object store", storeBefore, snapshot(t, f.store))
	sameSnapshot(t, "image directory", imgBefore, snapshot(t, filepath.Dir(f.img)))

	// Mounted again, the changes are there on top of the image.
	mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, UpperDir: upper, WorkDir: work, ReadOnly: true})
	defer mustUnmount(t, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "new-file")); err != nil || string(b) != "new content" {
		t.Errorf("remounted: new-file = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, sizeName(65536))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remounted: removed file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a ReadOnly mount with upperdir: %v, want EROFS", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMountDigest(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	d, err := fsverity.DigestFile(f.img, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	good := fsverity.Hex(d)
	d[0] ^= 0xff
	bad := fsverity.Hex(d)

	t.Run("right", func(t *testing.T) {
		dir := target(t)
		loopsBefore := loopBackings(t)
		mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, ExpectedDigest: good})
		// Without fs-verity on the image, what is mounted is a sealed
		// private copy of it.
		if _, _, err := fsverity.Measure(mustOpen(t, f.img)); err != nil {
			var memfdLoop bool
			for dev, b := range loopBackings(t) {
				if _, ok := loopsBefore[dev]; !ok && strings.HasPrefix(b, "/memfd:gocfs:") {
					memfdLoop = true
				}
			}
			if !memfdLoop {
				t.Errorf("no loop device over a sealed memfd copy of the image: %v", loopBackings(t))
			}
		}
		testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))
		mustUnmount(t, dir)
	})

	t.Run("wrong", func(t *testing.T) {
		dir := target(t)
		loopsBefore := loopBackings(t)
		erofsBefore := erofsMounts(t)
		err := Mount(f.img, dir, Options{Basedirs: []string{f.store}, ExpectedDigest: bad})
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Mount with a wrong digest: %v, want ErrDigestMismatch", err)
		}
		if !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
			t.Errorf("mismatch error %q does not show both digests", err)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("something is mounted on %s after a refused mount", dir)
		}
		if n := erofsMounts(t); n != erofsBefore {
			t.Errorf("EROFS mounts left behind")
		}
		for dev, b := range loopBackings(t) {
			if _, ok := loopsBefore[dev]; !ok {
				t.Errorf("loop device %s (%s) left behind", dev, b)
			}
		}
	})

	t.Run("tampered", func(t *testing.T) {
		// A copy of the image with one byte changed has another digest.
		img := filepath.Join(t.TempDir(), "tampered.cfs")
		b, err := os.ReadFile(f.img)
		must(t, err)
		b[len(b)-1] ^= 1
		must(t, os.WriteFile(img, b, 0o644))
		err = Mount(img, target(t), Options{Basedirs: []string{f.store}, ExpectedDigest: good})
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Mount of a tampered image: %v, want ErrDigestMismatch", err)
		}
	})

	t.Run("parsed", func(t *testing.T) {
		// digest= implies verity, as upstream: without fs-verity in
		// the object store, inline files read and external ones fail.
		opts, err := ParseOptions("basedir=" + EscapeOption(f.store) + ",digest=" + good)
		must(t, err)
		var notices []string
		opts.Notice = func(m string) { notices = append(notices, m) }
		dir := target(t)
		mustMount(t, f.img, dir, opts)
		defer mustUnmount(t, dir)
		if ok, _ := storesHaveVerity([]string{f.store}); ok {
			t.Skip("object store has fs-verity: not the case this test checks")
		}
		if len(notices) == 0 || !strings.Contains(notices[0], "EIO") {
			t.Errorf("no warning about EIO under verity=require without fs-verity: %q", notices)
		}
		if _, err := os.ReadFile(filepath.Join(dir, sizeName(64))); err != nil {
			t.Errorf("inline file: %v", err)
		}
		if _, err := os.ReadFile(filepath.Join(dir, sizeName(4096))); !errors.Is(err, unix.EIO) {
			t.Errorf("external file without fs-verity under verity=require: %v, want EIO", err)
		}
	})
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestMountVerity(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	if ok, why := storesHaveVerity([]string{f.store}); ok {
		t.Skip("the object store has fs-verity; these tests check the case without")
	} else {
		t.Logf("object store: %s", why)
	}
	t.Run("try", func(t *testing.T) {
		var notices []string
		dir := target(t)
		mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, Verity: VerityTry, Notice: func(m string) { notices = append(notices, m) }})
		defer mustUnmount(t, dir)
		if len(notices) != 1 || !strings.Contains(notices[0], "tryverity: mounting without fs-verity") || !strings.Contains(notices[0], f.store) {
			t.Errorf("notices %q, want one saying tryverity mounts without fs-verity and why", notices)
		} else {
			t.Logf("notice: %s", notices[0])
		}
		if mi := testutil.MountAt(t, dir); mi == nil || strings.Contains(mi.SuperOpts, "verity") {
			t.Errorf("tryverity without fs-verity support: mount %+v has verity", mi)
		}
		testutil.CompareTrees(t, f.src, dir, compareOptions(testutil.DefaultSampleOptions()))
	})
	t.Run("require", func(t *testing.T) {
		var notices []string
		dir := target(t)
		mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, Verity: VerityRequire, Notice: func(m string) { notices = append(notices, m) }})
		defer mustUnmount(t, dir)
		if len(notices) != 1 || !strings.Contains(notices[0], "EIO") {
			t.Errorf("notices %q, want a warning that reads will fail", notices)
		}
		if mi := testutil.MountAt(t, dir); mi == nil || !strings.Contains(mi.SuperOpts, "verity=require") {
			t.Errorf("mount %+v lacks verity=require", mi)
		}
		if _, err := os.ReadFile(filepath.Join(dir, sizeName(100000))); !errors.Is(err, unix.EIO) {
			t.Errorf("reading an object without fs-verity under verity=require: %v, want EIO", err)
		}
	})
}

// TestMountWithFsverity covers a store whose file system has fs-verity (not
// the case on a kernel without CONFIG_FS_VERITY: run it in the test VM).
func TestMountWithFsverity(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	if ok, why := storesHaveVerity([]string{f.store}); !ok {
		t.Skipf("needs an object store with fs-verity: %s", why)
	}
	copts := compareOptions(sopts)
	for _, mode := range []VerityMode{VerityTry, VerityRequire} {
		t.Run(mode.String(), func(t *testing.T) {
			var notices []string
			dir := target(t)
			mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, Verity: mode, Notice: func(m string) { notices = append(notices, m) }})
			defer mustUnmount(t, dir)
			if len(notices) > 0 {
				t.Errorf("notices with fs-verity available: %q", notices)
			}
			if mi := testutil.MountAt(t, dir); mi == nil || !strings.Contains(mi.SuperOpts, "verity=require") {
				t.Errorf("mount %+v lacks verity=require", mi)
			}
			testutil.CompareTrees(t, f.src, dir, copts)
		})
	}

	t.Run("object without verity", func(t *testing.T) {
		// A store where one object has the right content but no
		// fs-verity: under verity=require that file fails, the others
		// read.
		store := filepath.Join(filepath.Dir(f.store), "objects-copy-"+strconv.Itoa(os.Getpid()))
		must(t, os.MkdirAll(store, 0o755))
		defer os.RemoveAll(store)
		var victim string
		must(t, filepath.WalkDir(f.store, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(f.store, p)
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(store, rel)), 0o755))
			if victim == "" {
				victim = rel
				b, err := os.ReadFile(p)
				must(t, err)
				return os.WriteFile(filepath.Join(store, rel), b, 0o644)
			}
			return os.Link(p, filepath.Join(store, rel))
		}))
		// tryverity too: an object stripped of fs-verity must not turn the
		// checks off for the whole mount.
		for _, mode := range []VerityMode{VerityRequire, VerityTry} {
			dir := target(t)
			mustMount(t, f.img, dir, Options{Basedirs: []string{store}, Verity: mode})
			diffs, err := testutil.DiffTrees(f.src, dir, copts)
			mustUnmount(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) == 0 {
				t.Errorf("%v: no file failed although object %s lacks fs-verity", mode, victim)
			}
			for _, d := range diffs {
				if !strings.Contains(d, "content differs") || !strings.Contains(d, "input/output error") {
					t.Errorf("%v: unexpected difference: %s", mode, d)
				}
			}
		}
	})

	t.Run("image with verity", func(t *testing.T) {
		img := filepath.Join(filepath.Dir(f.store), "verity-"+strconv.Itoa(os.Getpid())+".cfs")
		b, err := os.ReadFile(f.img)
		must(t, err)
		must(t, os.WriteFile(img, b, 0o644))
		defer os.Remove(img)
		vf, err := os.Open(img)
		must(t, err)
		must(t, fsverity.Enable(vf, fsverity.SHA256))
		vf.Close()
		d, err := fsverity.DigestFile(img, fsverity.SHA256)
		must(t, err)
		loopsBefore := loopBackings(t)
		dir := target(t)
		mustMount(t, img, dir, Options{Basedirs: []string{f.store}, ExpectedDigest: fsverity.Hex(d)})
		for dev, b := range loopBackings(t) {
			if _, ok := loopsBefore[dev]; !ok && strings.Contains(b, "memfd") {
				t.Errorf("image with fs-verity was copied (%s on %s): the kernel's measure suffices", b, dev)
			}
		}
		testutil.CompareTrees(t, f.src, dir, copts)
		mustUnmount(t, dir)
		d[5] ^= 1
		err = Mount(img, dir, Options{Basedirs: []string{f.store}, ExpectedDigest: fsverity.Hex(d)})
		if !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("wrong digest for an image with fs-verity: %v", err)
		}
	})
}

func TestMountIdmap(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	const shift = 100000
	ns := testutil.NewUserNS(t,
		[]testutil.IDMap{{Inside: 0, Outside: shift, Size: 65536}},
		[]testutil.IDMap{{Inside: 0, Outside: 2 * shift, Size: 65536}})
	mapID := func(off uint32) func(uint32) uint32 {
		return func(id uint32) uint32 {
			if id < 65536 {
				return id + off
			}
			return 65534 // the overflow ID
		}
	}
	copts := compareOptions(sopts)
	copts.MapUID, copts.MapGID = mapID(shift), mapID(2*shift)
	for _, byPath := range []bool{false, true} {
		t.Run(map[bool]string{false: "file", true: "path"}[byPath], func(t *testing.T) {
			opts := Options{Basedirs: []string{f.store}}
			if byPath {
				opts.IDMapPath = "/proc/self/fd/" + strconv.Itoa(int(ns.Fd()))
			} else {
				opts.IDMapFile = ns
			}
			dir := target(t)
			mustMount(t, f.img, dir, opts)
			defer mustUnmount(t, dir)
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(dir, sizeName(100)), &st))
			if st.Uid != shift || st.Gid != 2*shift {
				t.Errorf("root-owned file shows as %d:%d, want %d:%d", st.Uid, st.Gid, shift, 2*shift)
			}
			testutil.CompareTrees(t, f.src, dir, copts)
		})
	}
	t.Run("initial-userns", func(t *testing.T) {
		dir := target(t)
		err := Mount(f.img, dir, Options{Basedirs: []string{f.store}, IDMapPath: "/proc/self/ns/user"})
		t.Logf("error: %v", err)
		if err == nil || !strings.Contains(err.Error(), "idmap") {
			t.Errorf("idmap with the initial user namespace: %v", err)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("mounted despite the error")
		}
	})
	t.Run("not-a-userns", func(t *testing.T) {
		dir := target(t)
		err := Mount(f.img, dir, Options{Basedirs: []string{f.store}, IDMapPath: f.img})
		t.Logf("error: %v", err)
		if err == nil || !strings.Contains(err.Error(), "idmap") {
			t.Errorf("idmap with a file that is not a user namespace: %v", err)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("mounted despite the error")
		}
	})
}

func TestMountManyImages(t *testing.T) {
	testutil.RequireRoot(t)
	const n = 10
	base := t.TempDir()
	store := filepath.Join(base, "objects")
	must(t, os.Mkdir(store, 0o755))
	type one struct{ src, img, dir string }
	images := make([]one, n)
	for i := range images {
		o := one{src: filepath.Join(base, fmt.Sprintf("src%d", i)), img: filepath.Join(base, fmt.Sprintf("img%d.cfs", i)), dir: target(t)}
		must(t, os.MkdirAll(filepath.Join(o.src, "sub"), 0o755))
		// Shared content (one object for all) and content of its own.
		must(t, os.WriteFile(filepath.Join(o.src, "shared"), bytes.Repeat([]byte("shared "), 1000), 0o644))
		must(t, os.WriteFile(filepath.Join(o.src, "sub", "own"), bytes.Repeat([]byte(fmt.Sprintf("image %d ", i)), 500), 0o644))
		must(t, os.WriteFile(filepath.Join(o.src, fmt.Sprintf("only-in-%d", i)), []byte("x"), 0o644))
		testutil.Mkcomposefs(t, o.src, o.img, store)
		images[i] = o
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, o := range images {
		wg.Go(func() { errs[i] = Mount(o.img, o.dir, Options{Basedirs: []string{store}}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
	}
	for _, o := range images {
		testutil.CompareTrees(t, o.src, o.dir, testutil.CompareOptions{})
	}
	for _, o := range images {
		mustUnmount(t, o.dir)
	}
}

func TestMountMultipleBasedirs(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("a"), 5000), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "b"), bytes.Repeat([]byte("b"), 5000), 0o644))
	store := filepath.Join(base, "all")
	must(t, os.Mkdir(store, 0o755))
	img := filepath.Join(base, "img.cfs")
	testutil.Mkcomposefs(t, src, img, store)
	// Split the objects over two stores, one with a comma in its name.
	s1, s2 := filepath.Join(base, "s1"), filepath.Join(base, "s,2")
	must(t, os.Rename(store, s1))
	var moved int
	must(t, filepath.WalkDir(s1, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || moved > 0 {
			return err
		}
		rel, _ := filepath.Rel(s1, p)
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(s2, rel)), 0o755))
		moved++
		return os.Rename(p, filepath.Join(s2, rel))
	}))
	for _, legacy := range []bool{false, true} {
		dir := target(t)
		mustMount(t, img, dir, Options{Basedirs: []string{s1, s2}, forceLegacy: legacy})
		testutil.CompareTrees(t, src, dir, testutil.CompareOptions{})
		mustUnmount(t, dir)
	}
	// With only one store, the file whose object is in the other fails.
	dir := target(t)
	mustMount(t, img, dir, Options{Basedirs: []string{s1}})
	defer mustUnmount(t, dir)
	_, ea := os.ReadFile(filepath.Join(dir, "a"))
	_, eb := os.ReadFile(filepath.Join(dir, "b"))
	if (ea == nil) == (eb == nil) {
		t.Errorf("one store of two: reading a: %v, b: %v; want exactly one to fail", ea, eb)
	}
}

func TestMountErrors(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	base := t.TempDir()
	junk := filepath.Join(base, "junk")
	must(t, os.WriteFile(junk, bytes.Repeat([]byte("not an image "), 500), 0o644))
	short := filepath.Join(base, "short")
	hdr, err := os.ReadFile(f.img)
	must(t, err)
	must(t, os.WriteFile(short, hdr[:100], 0o644))
	file := filepath.Join(base, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	store := []string{f.store}
	tests := []struct {
		name, img, dir string
		opts           Options
		is             error
		msg            string
	}{
		{"no basedir", f.img, "", Options{}, ErrInvalidOptions, "no basedir"},
		{"upper without work", f.img, "", Options{Basedirs: store, UpperDir: base}, ErrInvalidOptions, "together"},
		{"bad digest", f.img, "", Options{Basedirs: store, ExpectedDigest: "abc"}, ErrInvalidOptions, "64 hex digits"},
		{"missing image", filepath.Join(base, "nope.cfs"), "", Options{Basedirs: store}, os.ErrNotExist, "nope.cfs"},
		{"not composefs", junk, "", Options{Basedirs: store}, ErrNotComposefs, "mkcomposefs"},
		{"truncated", short, "", Options{Basedirs: store}, ErrNotComposefs, "EROFS superblock"},
		{"missing basedir", f.img, "", Options{Basedirs: []string{filepath.Join(base, "no-store")}}, os.ErrNotExist, "--digest-store"},
		{"basedir is a file", f.img, "", Options{Basedirs: []string{file}}, nil, "not a directory"},
		{"missing mount point", f.img, filepath.Join(base, "no-mnt"), Options{Basedirs: store}, os.ErrNotExist, "mount point"},
		{"mount point is a file", f.img, file, Options{Basedirs: store}, nil, "not a directory"},
		{"missing upperdir", f.img, "", Options{Basedirs: store, UpperDir: filepath.Join(base, "u"), WorkDir: base}, os.ErrNotExist, "upperdir"},
		{"missing idmap", f.img, "", Options{Basedirs: store, IDMapPath: filepath.Join(base, "ns")}, os.ErrNotExist, "idmap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = target(t)
			}
			err := Mount(tt.img, dir, tt.opts)
			if err == nil {
				t.Fatalf("Mount succeeded")
			}
			t.Logf("error: %v", err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error does not mention %q", tt.msg)
			}
			if testutil.IsMountPoint(t, dir) {
				t.Errorf("mounted despite the error")
			}
		})
	}
}

// The not-root test runs this test binary again as nobody, which mounts
// and prints the error.
const helperEnv = "GOCFS_MOUNT_TEST_HELPER"

func helperMain() int {
	args := strings.Split(os.Getenv(helperEnv), "\n")
	err := Mount(args[0], args[1], Options{Basedirs: []string{args[2]}})
	fmt.Printf("need-root=%v eperm=%v err=%v\n", errors.Is(err, ErrNeedRoot), errors.Is(err, unix.EPERM), err)
	return 0
}

func TestMountNotRoot(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	dir := target(t)
	for p := dir; p != "/"; p = filepath.Dir(p) {
		if strings.HasPrefix(p, os.TempDir()+"/") {
			os.Chmod(p, 0o755)
		}
	}
	for p := f.img; p != "/"; p = filepath.Dir(p) {
		if strings.HasPrefix(p, os.TempDir()+"/") {
			os.Chmod(p, 0o755)
		}
	}
	// A copy of this test binary that nobody can run.
	self, err := os.Executable()
	must(t, err)
	b, err := os.ReadFile(self)
	must(t, err)
	exe := filepath.Join(filepath.Dir(dir), "helper")
	must(t, os.WriteFile(exe, b, 0o755))
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+f.img+"\n"+dir+"\n"+f.store)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	t.Logf("as nobody: %s", out)
	if !strings.Contains(string(out), "need-root=true eperm=true") || !strings.Contains(string(out), "mounting needs root (CAP_SYS_ADMIN)") {
		t.Errorf("mounting as nobody: %s; want an error wrapping ErrNeedRoot and EPERM", out)
	}
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("mounted as nobody")
	}
}

func TestMountFlags(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	opts, err := ParseOptions("rw,nosuid,nodev,noexec,noatime,basedir=" + EscapeOption(f.store))
	must(t, err)
	for _, legacy := range []bool{false, true} {
		opts.forceLegacy = legacy
		dir := target(t)
		mustMount(t, f.img, dir, opts)
		mi := testutil.MountAt(t, dir)
		for _, want := range []string{"ro", "nosuid", "nodev", "noexec", "noatime"} {
			if mi == nil || !strings.Contains(","+mi.Options+",", ","+want+",") {
				t.Errorf("legacy=%v: mount options %+v lack %s", legacy, mi, want)
			}
		}
		mustUnmount(t, dir)
	}
}

func TestMountNamespace(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("no unshare(1) to make a mount namespace: %v", err)
	}
	// A process in a mount namespace of its own, with private
	// propagation so that nothing mounted there shows here.
	// The child signals once unshare(1) has made its namespace private: a
	// mount made earlier would still propagate back here.
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", `touch "$0" && exec sleep 60`, ready)
	must(t, cmd.Start())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pid := strconv.Itoa(cmd.Process.Pid)
	ns := "/proc/" + pid + "/ns/mnt"
	entered := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(ready); err == nil {
			entered = true
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
	if !entered {
		t.Fatalf("unshare(1) did not set up a private mount namespace within 20s")
	}
	dir := target(t)
	mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}, MountNamespace: ns})
	if testutil.IsMountPoint(t, dir) {
		t.Fatalf("mounted in the caller's namespace")
	}
	info, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	must(t, err)
	if !strings.Contains(string(info), " "+dir+" ") {
		t.Fatalf("not mounted in the other namespace")
	}
	testutil.CompareTrees(t, f.src, filepath.Join("/proc", pid, "root", dir), compareOptions(sopts))

	err = Mount(f.img, dir, Options{Basedirs: []string{f.store}, MountNamespace: f.img})
	if err == nil || !strings.Contains(err.Error(), "not a namespace") {
		t.Errorf("MountNamespace that is not a namespace: %v", err)
	}
}

func TestMountFile(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	img := mustOpen(t, f.img)
	if _, err := img.Seek(12345, 0); err != nil {
		t.Fatal(err)
	}
	dir := target(t)
	if err := MountFile(img, dir, Options{Basedirs: []string{f.store}}); err != nil {
		t.Fatal(err)
	}
	defer mustUnmount(t, dir)
	if off, _ := img.Seek(0, 1); off != 12345 {
		t.Errorf("MountFile moved the file offset to %d", off)
	}
	testutil.CompareTrees(t, f.src, dir, testutil.CompareOptions{IgnoreContent: true, NoXattrs: true, ComposefsWhiteouts: true})
}

func TestUnmount(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	dir := target(t)
	if err := Unmount(dir); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "not a mount point") {
		t.Errorf("Unmount of a plain directory: %v", err)
	}
	mustMount(t, f.img, dir, Options{Basedirs: []string{f.store}})
	busy := mustOpen(t, filepath.Join(dir, sizeName(100000)))
	if err := Unmount(dir); !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "lazily") {
		t.Errorf("Unmount while a file is open: %v, want EBUSY", err)
	}
	if err := UnmountLazy(dir); err != nil {
		t.Errorf("UnmountLazy: %v", err)
	}
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("still mounted after UnmountLazy")
	}
	// The open file still reads.
	if _, err := busy.Read(make([]byte, 10)); err != nil {
		t.Errorf("reading a file of a lazily unmounted composefs: %v", err)
	}
}

// TestMountDetached: the detached mount shows nowhere until attached, then
// shows the source tree; closed without being attached, it leaves nothing
// (no mount, no loop device).
func TestMountDetached(t *testing.T) {
	opts := testutil.SampleOptions{Hardlinks: true}
	f := sample(t, opts)
	img := mustOpen(t, f.img)
	defer img.Close()
	before, loopsBefore := erofsMounts(t), loopBackings(t)

	mnt, err := MountDetached(img, Options{Basedirs: []string{f.store}})
	if err != nil {
		skipIfMissing(t, err)
		t.Fatal(err)
	}
	if n := erofsMounts(t); n != before {
		t.Errorf("a detached mount shows in mountinfo: %d EROFS mounts, were %d", n, before)
	}
	dir := target(t)
	if err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatal(err)
	}
	mnt.Close()
	testutil.CompareTrees(t, f.src, dir, compareOptions(opts))
	mi := testutil.MountAt(t, dir)
	for _, o := range []string{"ro", "nodev", "nosuid"} {
		if !strings.Contains(","+mi.Options+",", ","+o+",") {
			t.Errorf("mount options %s lack %s", mi.Options, o)
		}
	}
	mustUnmount(t, dir)

	// A private copy (a memfd, mounted through a loop device), closed
	// unattached.
	cp, _, err := SealedCopy(img, f.img, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	mnt, err = MountDetached(cp, Options{Basedirs: []string{f.store}})
	if err != nil {
		t.Fatal(err)
	}
	var devs []string // the loop device of this mount
	for dev, backing := range loopBackings(t) {
		if _, ok := loopsBefore[dev]; !ok && strings.Contains(backing, "memfd:") {
			devs = append(devs, dev)
		}
	}
	if len(devs) == 0 {
		t.Error("no loop device for the mount of a memfd")
	}
	mnt.Close()
	cp.Close()
	waitLoopsGone(t, devs)
	if _, err := MountDetached(img, Options{Basedirs: []string{f.store}, MountNamespace: "/proc/self/ns/mnt"}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("MountDetached with a mount namespace: %v, want ErrInvalidOptions", err)
	}
}

// TestSealedCopyLimit: a file over the limit is refused, and the copy of
// one within it is sealed.
func TestSealedCopyLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, make([]byte, 10000), 0o644))
	f := mustOpen(t, p)
	defer f.Close()
	if _, _, err := SealedCopy(f, p, 9999); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	cp, n, err := SealedCopy(f, p, 10000)
	if err != nil || n != 10000 {
		t.Fatalf("SealedCopy = %d, %v", n, err)
	}
	defer cp.Close()
	if _, err := cp.WriteAt([]byte{1}, 0); err == nil {
		t.Error("the copy can be written")
	}
}
