//go:build linux

package fuse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/tree"
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

// requireFUSE skips the test when FUSE mounts cannot be made here.
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse (%v): FUSE mounts need the fuse kernel module", err)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("not root and no fusermount3: cannot mount with FUSE")
		}
	}
}

// fixture is a source tree, its image and its object store.
type fixture struct {
	src, img, store string
}

var (
	sampleMu    sync.Mutex
	sampleCache = map[testutil.SampleOptions]*fixture{}
	sampleDir   string
)

// tempDir returns a new directory that outlives the test (removed at the
// end of the process), readable by every user.
func tempDir(t testing.TB) string {
	t.Helper()
	if sampleDir == "" {
		d, err := os.MkdirTemp("", "gocfs-fuse-test-")
		if err != nil {
			t.Fatal(err)
		}
		sampleDir = d
		must(t, os.Chmod(d, 0o755))
	}
	dir, err := os.MkdirTemp(sampleDir, "f-")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Chmod(dir, 0o755))
	return dir
}

// sample returns the image of a sample tree made with opts, built once per
// test process.
func sample(t testing.TB, opts testutil.SampleOptions) *fixture {
	t.Helper()
	sampleMu.Lock()
	defer sampleMu.Unlock()
	if f, ok := sampleCache[opts]; ok {
		return f
	}
	dir := tempDir(t)
	f := &fixture{src: filepath.Join(dir, "src"), img: filepath.Join(dir, "image.cfs"), store: filepath.Join(dir, "objects")}
	must(t, os.MkdirAll(f.store, 0o755))
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

// compareOptions are the comparison options of the kernel mount tests, for
// a mount of an image made with opts.
func compareOptions(opts testutil.SampleOptions) testutil.CompareOptions {
	return testutil.CompareOptions{
		Hardlinks:          opts.Hardlinks && testutil.MkcomposefsName() == "gocfs",
		ComposefsWhiteouts: true,
	}
}

// target returns a fresh mount point, unmounted (lazily) at the end of the
// test if something is still mounted there.
func target(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	must(t, os.Mkdir(dir, 0o755))
	t.Cleanup(func() {
		for testutil.IsMountPoint(t, dir) {
			if err := Unmount(dir, true); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	return dir
}

// logs collects what a server logs.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) add(m string) {
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.mu.Unlock()
}

func (l *logs) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r []string
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			r = append(r, m)
		}
	}
	return r
}

// mountFUSE mounts img on a fresh directory and returns the server and the
// directory; the test's cleanup unmounts it.
func mountFUSE(t testing.TB, img string, opts mount.Options) (*Server, string, *logs) {
	t.Helper()
	requireFUSE(t)
	dir := target(t)
	l := &logs{}
	if opts.Notice == nil {
		opts.Notice = func(m string) { l.add(m); t.Logf("server: %s", m) }
	}
	srv, err := Mount(img, dir, opts)
	if err != nil {
		t.Fatalf("Mount(%s, %s): %v", img, dir, err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			Unmount(dir, true)
			srv.Wait()
		}
	})
	return srv, dir, l
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMountMatchesSource(t *testing.T) {
	for _, c := range []struct {
		name        string
		acls        bool
		passthrough bool
	}{
		{"passthrough", false, true},
		{"reads", false, false},
		{"acls", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sopts := testutil.DefaultSampleOptions()
			sopts.ACLs = c.acls
			f := sample(t, sopts)
			srv, dir, _ := mountFUSE(t, f.img, mount.Options{Basedirs: []string{f.store}, FUSE: mount.FUSEOptions{NoPassthrough: !c.passthrough, AllowOther: true}})
			t.Logf("passthrough: %v", srv.Passthrough())
			if c.passthrough && os.Geteuid() == 0 && !srv.Passthrough() {
				t.Logf("no FUSE passthrough as root: the kernel lacks it")
			}
			mi := testutil.MountAt(t, dir)
			if mi == nil || mi.FSType != "fuse.composefs" {
				t.Fatalf("mount table entry for %s: %+v, want fuse.composefs", dir, mi)
			}
			if !strings.Contains(","+mi.Options+",", ",ro,") {
				t.Errorf("mount options %q, want ro", mi.Options)
			}
			testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))
			if c.acls {
				if _, err := unix.Lgetxattr(filepath.Join(dir, "acl/file"), "system.posix_acl_access", make([]byte, 256)); err != nil {
					t.Errorf("ACL not visible through the mount: %v", err)
				}
			} else if _, err := unix.Lgetxattr(filepath.Join(dir, "size-0000100"), "system.posix_acl_access", make([]byte, 256)); err == nil {
				t.Errorf("ACL on a file of an image without ACLs")
			}
			if err := os.WriteFile(filepath.Join(dir, "new-file"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("creating a file: %v, want EROFS", err)
			}
			if f, err := os.OpenFile(filepath.Join(dir, "size-0065536"), os.O_WRONLY, 0); !errors.Is(err, unix.EROFS) {
				if err == nil {
					f.Close()
				}
				t.Errorf("opening a file for writing: %v, want EROFS", err)
			}
			st := srv.Stats()
			t.Logf("stats: %+v", st)
			if st.Refused != 0 {
				t.Errorf("%d opens refused", st.Refused)
			}
			if st.Hashed == 0 {
				t.Errorf("no object was hashed under verity=try")
			}
			if c.passthrough && srv.Passthrough() && (st.PassthroughOpens == 0 || st.ObjectReads != 0) {
				t.Errorf("passthrough available but not used (%d opens with it, %d reads through the server)", st.PassthroughOpens, st.ObjectReads)
			}
			if !c.passthrough && (st.PassthroughOpens != 0 || st.ObjectReads == 0) {
				t.Errorf("passthrough used with NoPassthrough (%d opens with it, %d reads through the server)", st.PassthroughOpens, st.ObjectReads)
			}
		})
	}
}

// statOf returns the lstat of every entry under dir, by relative path.
func statOf(t *testing.T, dir string) map[string]unix.Stat_t {
	t.Helper()
	res := map[string]unix.Stat_t{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		res[rel] = st
		return nil
	})
	must(t, err)
	return res
}

// TestMountMatchesKernel compares a FUSE mount with the kernel mount of the
// same image: every xattr (overlayfs's escaped ones included), and the stat
// fields the comparison with the source leaves out (inode numbers, link
// counts of directories, sizes of directories, blocks).
func TestMountMatchesKernel(t *testing.T) {
	testutil.RequireRoot(t)
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	kdir := target(t)
	if err := mount.Mount(f.img, kdir, mount.Options{Basedirs: []string{f.store}}); err != nil {
		var fe *mount.FeatureError
		if errors.As(err, &fe) {
			t.Skipf("no kernel composefs mount to compare with: %v", err)
		}
		t.Fatal(err)
	}
	defer mount.Unmount(kdir)
	_, dir, _ := mountFUSE(t, f.img, mount.Options{Basedirs: []string{f.store}})
	all := func(string) bool { return true }
	testutil.CompareTrees(t, kdir, dir, testutil.CompareOptions{Xattrs: all, Hardlinks: true})

	kst, fst := statOf(t, kdir), statOf(t, dir)
	if len(kst) != len(fst) {
		t.Errorf("%d entries in the FUSE mount, %d in the kernel mount", len(fst), len(kst))
	}
	diffs := 0
	for p, k := range kst {
		g, ok := fst[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		type fields struct {
			Ino, Nlink uint64
			Mode       uint32
			Size       int64
			Blocks     int64
			Rdev       uint64
			Mtim, Ctim unix.Timespec
		}
		kf := fields{k.Ino, uint64(k.Nlink), k.Mode, k.Size, k.Blocks, k.Rdev, k.Mtim, k.Ctim}
		gf := fields{g.Ino, uint64(g.Nlink), g.Mode, g.Size, g.Blocks, g.Rdev, g.Mtim, g.Ctim}
		if kf != gf && diffs < 20 {
			diffs++
			t.Errorf("%s: FUSE %+v, kernel %+v", p, gf, kf)
		}
	}
}

// storeTree is a small tree whose files are all in the object store.
func storeTree(t testing.TB, n int) (dir string, files map[string][]byte) {
	t.Helper()
	dir = filepath.Join(tempDir(t), "src")
	must(t, os.Mkdir(dir, 0o755))
	files = map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("file-%d", i)
		data := bytes.Repeat([]byte(name+"\n"), 10000+i*997)
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
		files[name] = data
	}
	return dir, files
}

// objectOf returns the store path of name's object in the image img.
func objectOf(t testing.TB, img, store, name string) string {
	t.Helper()
	root, err := image.ReadFile(img, image.ReadOptions{})
	must(t, err)
	n := root.Lookup(name)
	if n == nil || n.Payload == "" {
		t.Fatalf("%s: no object in %s", name, img)
	}
	return filepath.Join(store, n.Payload)
}

// tamper changes one byte of the file p in place.
func tamper(t testing.TB, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, 5000)
	must(t, err)
	b[0] ^= 0x55
	_, err = f.WriteAt(b, 5000)
	must(t, err)
}

func TestTamperedObject(t *testing.T) {
	for _, passthrough := range []bool{true, false} {
		t.Run(fmt.Sprintf("passthrough=%v", passthrough), func(t *testing.T) {
			src, files := storeTree(t, 3)
			base := filepath.Dir(src)
			img, store := filepath.Join(base, "image.cfs"), filepath.Join(base, "objects")
			must(t, os.Mkdir(store, 0o755))
			testutil.Mkcomposefs(t, src, img, store)
			tamper(t, objectOf(t, img, store, "file-0"))

			srv, dir, l := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, FUSE: mount.FUSEOptions{NoPassthrough: !passthrough}})
			for range 2 {
				if _, err := os.ReadFile(filepath.Join(dir, "file-0")); !errors.Is(err, unix.EIO) {
					t.Errorf("reading the tampered file: %v, want EIO", err)
				}
			}
			if m := l.matching("file-0"); len(m) != 1 || !strings.Contains(m[0], "digest mismatch") {
				t.Errorf("log about the tampered object: %q, want one digest mismatch", m)
			}
			for _, name := range []string{"file-1", "file-2", "file-1"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || !bytes.Equal(b, files[name]) {
					t.Errorf("%s: %d bytes, %v; want its %d bytes", name, len(b), err, len(files[name]))
				}
			}
			st := srv.Stats()
			if st.Hashed != 3 || st.CacheHits != 2 || st.Refused != 2 {
				t.Errorf("stats %+v, want 3 objects hashed, 2 cache hits (file-0, file-1), 2 refusals", st)
			}

			// Changed in place after it was checked: checked again at
			// the next open.
			p := filepath.Join(dir, "file-2")
			held, err := os.Open(p)
			must(t, err)
			defer held.Close()
			tamper(t, objectOf(t, img, store, "file-2"))
			if _, err := os.ReadFile(p); !errors.Is(err, unix.EIO) {
				t.Errorf("reading a file whose object changed after a first check: %v, want EIO", err)
			}
		})
	}
}

// writeImage writes the image of root to a new directory with an object
// store, where objects holds each payload's content, and returns the
// image's and the store's paths.
func writeImage(t testing.TB, root *tree.Node, objects map[string][]byte) (img, store string) {
	t.Helper()
	base := tempDir(t)
	img, store = filepath.Join(base, "image.cfs"), filepath.Join(base, "objects")
	for p, data := range objects {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(store, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(store, p), data, 0o644))
	}
	must(t, os.MkdirAll(store, 0o755))
	_, err := image.WriteFile(img, root, image.DefaultOptions)
	must(t, err)
	return img, store
}

func regular(payload string, data []byte, digest bool) *tree.Node {
	n := tree.New(tree.ModeRegular | 0o644)
	n.Size = uint64(len(data))
	n.Payload = payload
	if digest {
		n.Digest = fsverity.Sum(data, fsverity.SHA256)
	}
	return n
}

func TestVerityModes(t *testing.T) {
	with := bytes.Repeat([]byte("with a digest\n"), 1000)
	without := bytes.Repeat([]byte("without a digest\n"), 1000)
	root := tree.New(tree.ModeDir | 0o755)
	must(t, root.AddChild("with", regular("aa/with", with, true)))
	must(t, root.AddChild("without", regular("bb/without", without, false)))
	inline := tree.New(tree.ModeRegular | 0o644)
	must(t, inline.SetContent([]byte("inline")))
	inline.Size = 6
	must(t, root.AddChild("inline", inline))
	img, store := writeImage(t, root, map[string][]byte{"aa/with": with, "bb/without": without})

	for _, c := range []struct {
		mode                 VerityMode
		withOK, withoutOK    bool
		tamperedWithOK, logs bool
	}{
		{VerityRequire, true, false, false, true},
		{VerityTry, true, true, false, true},
		{VerityOff, true, true, true, false},
	} {
		t.Run(c.mode.String(), func(t *testing.T) {
			srv, dir, l := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true, Verity: c.mode})
			check := func(name string, want []byte, ok bool) {
				t.Helper()
				b, err := os.ReadFile(filepath.Join(dir, name))
				switch {
				case ok && (err != nil || !bytes.Equal(b, want)):
					t.Errorf("%s: %d bytes, %v; want its content", name, len(b), err)
				case !ok && !errors.Is(err, unix.EIO):
					t.Errorf("%s: %v, want EIO", name, err)
				}
			}
			check("with", with, c.withOK)
			check("without", without, c.withoutOK)
			check("inline", []byte("inline"), true)
			if !c.withoutOK {
				if m := l.matching("/without"); len(m) != 1 || !strings.Contains(m[0], "no fs-verity digest") {
					t.Errorf("log about the file without a digest: %q", m)
				}
			}
			if c.mode == VerityOff && srv.Stats().Hashed != 0 {
				t.Errorf("objects hashed with verity off: %+v", srv.Stats())
			}
		})
	}

	// The object of "with" tampered: only verity=off serves it.
	tampered := append([]byte(nil), with...)
	tampered[100] ^= 1
	must(t, os.WriteFile(filepath.Join(store, "aa/with"), tampered, 0o644))
	for _, mode := range []VerityMode{VerityRequire, VerityTry, VerityOff} {
		_, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true, Verity: mode})
		b, err := os.ReadFile(filepath.Join(dir, "with"))
		if mode == VerityOff {
			if !bytes.Equal(b, tampered) {
				t.Errorf("verity=off: %v, want the object as it is", err)
			}
		} else if !errors.Is(err, unix.EIO) {
			t.Errorf("verity=%v: tampered object: %v, want EIO", mode, err)
		}
	}
}

// TestMeasured checks that an object with fs-verity is measured, not
// hashed (with a fake FS_IOC_MEASURE_VERITY: this kernel may have none).
func TestMeasured(t *testing.T) {
	data := bytes.Repeat([]byte("measured\n"), 1000)
	root := tree.New(tree.ModeDir | 0o755)
	must(t, root.AddChild("f", regular("cc/f", data, true)))
	must(t, root.AddChild("g", regular("cc/g", data, true)))
	img, store := writeImage(t, root, map[string][]byte{"cc/f": data, "cc/g": data})
	var calls int
	var mu sync.Mutex
	measureVerity = func(f *os.File) (fsverity.Algorithm, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if strings.HasSuffix(f.Name(), "/g") {
			// As the kernel would report for another content.
			return fsverity.SHA256, fsverity.Sum([]byte("other"), fsverity.SHA256), nil
		}
		return fsverity.SHA256, fsverity.Sum(data, fsverity.SHA256), nil
	}
	defer func() { measureVerity = fsverity.Measure }()
	srv, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true})
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(b, data) {
		t.Errorf("f: %v", err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "g")); !errors.Is(err, unix.EIO) {
		t.Errorf("g (measured digest differs): %v, want EIO", err)
	}
	st := srv.Stats()
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || st.Measured != 2 || st.Hashed != 0 {
		t.Errorf("%d measure calls, stats %+v; want 2 measured, none hashed", calls, st)
	}
}

// TestHostileRedirects serves an image whose redirects leave the object
// store or name what is no object, with the structural check (which
// refuses them) skipped: the server refuses to serve those files.
func TestHostileRedirects(t *testing.T) {
	data := []byte(strings.Repeat("x", 100))
	root := tree.New(tree.ModeDir | 0o755)
	must(t, root.AddChild("dotdot", regular("../secret", data, false)))
	must(t, root.AddChild("symlink", regular("dd/link", data, false)))
	must(t, root.AddChild("fifo", regular("dd/fifo", data, false)))
	must(t, root.AddChild("missing", regular("dd/missing", data, false)))
	img, store := writeImage(t, root, map[string][]byte{"dd/x": data})
	must(t, os.WriteFile(filepath.Join(filepath.Dir(store), "secret"), data, 0o644))
	must(t, os.Symlink("x", filepath.Join(store, "dd/link")))
	must(t, unix.Mkfifo(filepath.Join(store, "dd/fifo"), 0o644))
	_, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true, Verity: VerityOff})
	for _, name := range []string{"dotdot", "symlink", "fifo", "missing"} {
		if _, err := os.ReadFile(filepath.Join(dir, name)); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: %v, want EIO", name, err)
		}
	}
}

func TestMultipleBasedirs(t *testing.T) {
	a := bytes.Repeat([]byte("a"), 5000)
	b := bytes.Repeat([]byte("b"), 5000)
	root := tree.New(tree.ModeDir | 0o755)
	must(t, root.AddChild("a", regular("aa/a", a, true)))
	must(t, root.AddChild("b", regular("bb/b", b, true)))
	img, store1 := writeImage(t, root, map[string][]byte{"aa/a": a})
	store2 := filepath.Join(tempDir(t), "objects")
	must(t, os.MkdirAll(filepath.Join(store2, "bb"), 0o755))
	must(t, os.WriteFile(filepath.Join(store2, "bb/b"), b, 0o644))
	must(t, os.MkdirAll(filepath.Join(store2, "aa"), 0o755))
	must(t, os.WriteFile(filepath.Join(store2, "aa/a"), []byte("shadowed"), 0o644))
	_, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{store1, store2}, NoVerify: true, Verity: VerityRequire})
	for name, want := range map[string][]byte{"a": a, "b": b} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDigest(t *testing.T) {
	sopts := testutil.DefaultSampleOptions()
	f := sample(t, sopts)
	d, err := fsverity.DigestFile(f.img, fsverity.SHA256)
	must(t, err)
	good := fsverity.Hex(d)
	d[0] ^= 0xff
	bad := fsverity.Hex(d)

	t.Run("right", func(t *testing.T) {
		// Served from a private copy: changing the image file after
		// the check changes nothing.
		img := filepath.Join(t.TempDir(), "image.cfs")
		orig, err := os.ReadFile(f.img)
		must(t, err)
		must(t, os.WriteFile(img, orig, 0o644))
		_, dir, _ := mountFUSE(t, img, mount.Options{Basedirs: []string{f.store}, ExpectedDigest: good})
		must(t, os.WriteFile(img, bytes.Repeat([]byte{0xa5}, len(orig)), 0o644))
		testutil.CompareTrees(t, f.src, dir, compareOptions(sopts))
	})
	t.Run("wrong", func(t *testing.T) {
		requireFUSE(t)
		dir := target(t)
		_, err := Mount(f.img, dir, mount.Options{Basedirs: []string{f.store}, ExpectedDigest: bad})
		if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Mount with a wrong digest: %v, want ErrDigestMismatch with both digests", err)
		}
		if testutil.IsMountPoint(t, dir) {
			t.Errorf("mounted despite the wrong digest")
		}
	})
	t.Run("invalid", func(t *testing.T) {
		_, err := Mount(f.img, t.TempDir(), mount.Options{Basedirs: []string{f.store}, ExpectedDigest: "xyz"})
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Mount with digest xyz: %v, want ErrInvalidOptions", err)
		}
	})
}

func TestMountErrors(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	notImage := filepath.Join(t.TempDir(), "not-an-image")
	must(t, os.WriteFile(notImage, bytes.Repeat([]byte("x"), 8192), 0o644))
	for _, c := range []struct {
		name string
		img  string
		opts mount.Options
		want error
	}{
		{"no basedir", f.img, mount.Options{}, ErrInvalidOptions},
		{"missing basedir", f.img, mount.Options{Basedirs: []string{"/nonexistent"}}, fs.ErrNotExist},
		{"basedir is a file", f.img, mount.Options{Basedirs: []string{f.img}}, unix.ENOTDIR},
		{"not an image", notImage, mount.Options{Basedirs: []string{f.store}}, ErrNotComposefs},
		{"not an image (image package)", notImage, mount.Options{Basedirs: []string{f.store}}, image.ErrNotComposefs},
		{"missing image", "/nonexistent.cfs", mount.Options{Basedirs: []string{f.store}}, fs.ErrNotExist},
		{"bad verity mode", f.img, mount.Options{Basedirs: []string{f.store}, Verity: 7}, ErrInvalidOptions},
	} {
		_, err := Mount(c.img, t.TempDir(), c.opts)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestUnmountBusy(t *testing.T) {
	f := sample(t, testutil.DefaultSampleOptions())
	srv, dir, _ := mountFUSE(t, f.img, mount.Options{Basedirs: []string{f.store}})
	h, err := os.Open(filepath.Join(dir, "size-0065536"))
	must(t, err)
	if err := srv.Unmount(); !errors.Is(err, syscall.EBUSY) && err == nil {
		t.Errorf("Unmount with an open file: %v, want an error", err)
	}
	h.Close()
	if err := Unmount(dir, false); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	srv.Wait()
	if testutil.IsMountPoint(t, dir) {
		t.Errorf("still mounted")
	}
}

// patchDirent makes the entry name of directory dirNid in the image file img
// point to inode nid instead.
func patchDirent(t *testing.T, img string, dirNid uint64, name string, nid uint64) {
	t.Helper()
	b, err := os.ReadFile(img)
	must(t, err)
	e, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	dir, err := e.Inode(dirNid)
	must(t, err)
	exts, err := dir.Extents()
	must(t, err)
	for _, x := range exts {
		for off := int64(0); off < x.Length; off += erofs.BlockSize {
			start := x.Physical + off
			blk := b[start : start+min(erofs.BlockSize, x.Length-off)]
			ents, err := erofs.ParseDirBlock(blk)
			must(t, err)
			for i, de := range ents {
				if de.Name == name {
					binary.LittleEndian.PutUint64(blk[i*erofs.DirentSize:], nid)
					must(t, os.WriteFile(img, b, 0o644))
					return
				}
			}
		}
	}
	t.Fatalf("no entry %q in directory %d", name, dirNid)
}

// TestHostileDirectories mounts images whose directories are reached
// twice: a directory hard link and a cycle. The structural check refuses
// such an image; with the check skipped (NoVerify), the server holds on
// its own: looking them up fails (EIO) and walking the mount ends.
func TestHostileDirectories(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	a, b := tree.New(tree.ModeDir|0o755), tree.New(tree.ModeDir|0o755)
	must(t, root.AddChild("a", a))
	must(t, root.AddChild("b", b))
	must(t, a.AddChild("loop", tree.New(tree.ModeDir|0o755)))
	img, store := writeImage(t, root, nil)
	e, err := os.ReadFile(img)
	must(t, err)
	ei, err := erofs.Open(bytes.NewReader(e), int64(len(e)))
	must(t, err)
	rootIn, err := ei.Inode(ei.RootNid())
	must(t, err)
	ea, _, err := rootIn.Lookup("a")
	must(t, err)
	patchDirent(t, img, ei.RootNid(), "b", ea.Nid)    // b is a again
	patchDirent(t, img, ea.Nid, "loop", ei.RootNid()) // a/loop is the root

	_, dir, l := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true})
	if _, err := os.Stat(filepath.Join(dir, "a")); err != nil {
		t.Errorf("a: %v", err)
	}
	for _, p := range []string{"b", "a/loop"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: %v, want EIO", p, err)
		}
	}
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		n++
		return nil
	})
	if n > 10 {
		t.Errorf("walked %d entries", n)
	}
	if len(l.matching("reached through two entries")) == 0 {
		t.Errorf("nothing logged about the directory reached twice")
	}
}
