package erofs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/schema"
)

func openImage(t testing.TB, p string) (*erofs.Image, []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return img, b
}

// entry is one file of a manifest.
type entry struct {
	path, typ string
	perm      fs.FileMode
	uid, gid  uint32
	size      int64
	mtime     int64
	extra     string // content hash, symlink target or device
}

func (e entry) String() string {
	return fmt.Sprintf("%s %s %o %d %d %d %d %s", e.path, e.typ, uint32(e.perm), e.uid, e.gid, e.size, e.mtime, e.extra)
}

func typeLetter(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "f"
	case fs.ModeDir:
		return "d"
	case fs.ModeSymlink:
		return "l"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "c"
	case fs.ModeDevice:
		return "b"
	case fs.ModeNamedPipe:
		return "p"
	case fs.ModeSocket:
		return "s"
	}
	return "?"
}

// permBits keeps the permission bits (fsck.erofs 1.5 loses setuid and
// setgid when it extracts).
func permBits(m fs.FileMode) fs.FileMode { return m & fs.ModePerm }

// manifestFS lists an image's files through the erofs FS view.
func manifestFS(t *testing.T, fsys *erofs.FS) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := fsys.Lstat(p)
		if err != nil {
			return err
		}
		in := fi.Sys().(*erofs.Inode)
		e := entry{path: p, typ: typeLetter(fi.Mode()), perm: permBits(fi.Mode()), uid: in.UID, gid: in.GID, size: fi.Size(), mtime: fi.ModTime().Unix(), extra: "-"}
		if d.Type() != fi.Mode().Type() {
			t.Errorf("%s: dirent type %v, inode type %v", p, d.Type(), fi.Mode().Type())
		}
		switch e.typ {
		case "d":
			e.size = 0
		case "f":
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			if int64(len(b)) != e.size {
				t.Errorf("%s: read %d bytes of %d", p, len(b), e.size)
			}
			e.extra = fmt.Sprintf("%x", sha256.Sum256(b))
		case "l":
			target, err := fsys.ReadLink(p)
			if err != nil {
				return err
			}
			e.extra = fmt.Sprintf("%q", target)
		case "c", "b":
			e.extra = fmt.Sprintf("%d,%d", unix.Major(uint64(in.Rdev)), unix.Minor(uint64(in.Rdev)))
		}
		out = append(out, e.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifestDir lists a directory tree (extracted by fsck.erofs) the same
// way.
func manifestDir(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{path: filepath.ToSlash(rel), typ: typeLetter(fi.Mode()), perm: permBits(fi.Mode()), uid: st.Uid, gid: st.Gid, size: fi.Size(), mtime: st.Mtim.Sec, extra: "-"}
		switch e.typ {
		case "d":
			e.size = 0
		case "f":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.extra = fmt.Sprintf("%x", sha256.Sum256(b))
		case "l":
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.extra = fmt.Sprintf("%q", target)
		case "c", "b":
			e.extra = fmt.Sprintf("%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		out = append(out, e.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareManifests(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			t.Errorf("missing: %s", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			t.Errorf("unexpected: %s", l)
		}
	}
}

var mkfsImages = []string{"mkfs-default", "mkfs-noinline", "mkfs-chunked"}

// TestMkfsImages reads images made by mkfs.erofs and checks our view
// against what fsck.erofs extracted from them when they were made.
func TestMkfsImages(t *testing.T) {
	for _, name := range mkfsImages {
		t.Run(name, func(t *testing.T) {
			img, _ := openImage(t, "testdata/"+name+".img")
			if os.Getenv("EROFS_GEN_MANIFEST") != "" {
				genManifest(t, name)
			}
			want, err := os.ReadFile("testdata/" + name + ".manifest")
			if err != nil {
				t.Fatal(err)
			}
			got := manifestFS(t, img.FS(""))
			compareManifests(t, got, strings.Split(strings.TrimSpace(string(want)), "\n"))
			// Xattrs as set by gen.sh.
			xs, err := img.FS("").Xattrs("small")
			if err != nil || len(xs) != 1 || xs[0].FullName() != "user.foo" || string(xs[0].Value) != "bar" {
				t.Errorf("small: xattrs %+v, %v", xs, err)
			}
			xs, err = img.FS("").Xattrs("dir")
			if err != nil || len(xs) != 1 || xs[0].FullName() != "trusted.x" || string(xs[0].Value) != "yyy" {
				t.Errorf("dir: xattrs %+v, %v", xs, err)
			}
		})
	}
}

// genManifest writes testdata/NAME.manifest from what fsck.erofs
// extracts from testdata/NAME.img.
func genManifest(t *testing.T, name string) {
	ex := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("fsck.erofs", "--extract="+ex, "testdata/"+name+".img").CombinedOutput(); err != nil {
		t.Fatalf("fsck.erofs: %v: %s", err, out)
	}
	m := manifestDir(t, ex)
	must(t, os.WriteFile("testdata/"+name+".manifest", []byte(strings.Join(m, "\n")+"\n"), 0o644))
}

// TestFsckAgreement builds fresh images with mkfs.erofs, extracts them
// with fsck.erofs, and checks our reader sees the same files. It needs
// erofs-utils (Debian package erofs-utils).
func TestFsckAgreement(t *testing.T) {
	mkfs, err1 := exec.LookPath("mkfs.erofs")
	fsck, err2 := exec.LookPath("fsck.erofs")
	if err1 != nil || err2 != nil {
		t.Skip("mkfs.erofs/fsck.erofs not installed: apt-get install erofs-utils")
	}
	src := t.TempDir()
	makeTree(t, src)
	variants := [][]string{
		{},
		{"-Enoinline_data"},
		{"--chunksize=4096"},
		{"--chunksize=16384"},
	}
	for i, v := range variants {
		t.Run(strings.Join(v, " "), func(t *testing.T) {
			dir := t.TempDir()
			imgPath := filepath.Join(dir, "img")
			args := append([]string{"-T0", "--all-root", "-Uabcdef01-0000-0000-0000-000000000000"}, v...)
			if out, err := exec.Command(mkfs, append(args, imgPath, src)...).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.erofs: %v: %s", err, out)
			}
			ex := filepath.Join(dir, "x")
			if out, err := exec.Command(fsck, "--extract="+ex, imgPath).CombinedOutput(); err != nil {
				t.Fatalf("fsck.erofs: %v: %s", err, out)
			}
			img, _ := openImage(t, imgPath)
			compareManifests(t, manifestFS(t, img.FS("")), manifestDir(t, ex))
			checkXattrs(t, img.FS(""), src)
			_ = i
		})
	}
}

// checkXattrs compares the image's xattrs with the source tree's.
func checkXattrs(t *testing.T, fsys *erofs.FS, src string) {
	t.Helper()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		xs, err := fsys.Xattrs(p)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, x := range xs {
			got[x.FullName()] = string(x.Value)
		}
		want := map[string]string{}
		sp := filepath.Join(src, filepath.FromSlash(p))
		buf := make([]byte, 64<<10)
		n, err := unix.Llistxattr(sp, buf)
		if err != nil {
			return err
		}
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if name == "" {
				continue
			}
			vb := make([]byte, 64<<10)
			m, err := unix.Lgetxattr(sp, name, vb)
			if err != nil {
				return err
			}
			want[name] = string(vb[:m])
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: xattrs %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// makeTree fills dir with files exercising the layouts: sizes around block
// boundaries, long names, many entries, symlinks, hard links, devices,
// FIFOs and xattrs.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "many"), 0o700))
	for i, n := range []int{0, 1, 100, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, 12289, 70000} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*7 + i)
		}
		must(os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", n)), b, 0o644))
	}
	must(os.WriteFile(filepath.Join(dir, "a/b/c/deep"), []byte("deep"), 0o600))
	for i := range 500 {
		must(os.WriteFile(filepath.Join(dir, "many", fmt.Sprintf("%03d-%s", i, strings.Repeat("n", i%200))), nil, 0o644))
	}
	must(os.Symlink("f100", filepath.Join(dir, "link")))
	must(os.Symlink(strings.Repeat("t", 4000), filepath.Join(dir, "longlink")))
	must(os.Symlink("/abs/target", filepath.Join(dir, "abslink")))
	must(os.Link(filepath.Join(dir, "f100"), filepath.Join(dir, "a/hardlink")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(os.WriteFile(filepath.Join(dir, strings.Repeat("L", 200)), []byte("long name"), 0o644))
	must(os.Chmod(filepath.Join(dir, "f1"), 0o4755|0o2000))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(dir, "chr"), unix.S_IFCHR|0o644, int(unix.Mkdev(4, 300))))
		must(unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 1))))
		must(unix.Setxattr(filepath.Join(dir, "a"), "trusted.t", []byte("tv"), 0))
	}
	must(unix.Setxattr(filepath.Join(dir, "f100"), "user.a", []byte("1"), 0))
	must(unix.Setxattr(filepath.Join(dir, "f4096"), "user.big", bytes.Repeat([]byte("v"), 3000), 0))
	must(unix.Setxattr(filepath.Join(dir, "f4097"), "user.a", []byte("1"), 0)) // shared with f100
}

// TestFSConformance runs the standard io/fs checks on an image.
func TestFSConformance(t *testing.T) {
	img, _ := openImage(t, "testdata/mkfs-default.img")
	// (Not the whole image: fstest opens every entry, and the image has a
	// dangling symlink.)
	for _, c := range []struct {
		dir  string
		want []string
	}{
		{"many", []string{"file_with_a_rather_long_name_0", "file_with_a_rather_long_name_299"}},
		{"dir", []string{"sub/deep"}},
	} {
		sub, err := fs.Sub(img.FS(""), c.dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, c.want...); err != nil {
			t.Error(err)
		}
	}
	fi, err := img.FS("").Stat("big")
	if err != nil || fi.Mode() != fs.ModeSetuid|0o755 {
		t.Errorf("big: %v %v", fi.Mode(), err)
	}
}

// TestComposefsFS reads composefs images through the FS view, with an
// object store for the redirected files.
func TestComposefsFS(t *testing.T) {
	img, _ := openImage(t, "../image/testdata/read/mixed.img")
	base := t.TempDir()
	fsys := img.FS(base)
	// Without the object, opening a redirected file fails.
	if _, err := fsys.Open("big"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open without object: %v", err)
	}
	xs, err := fsys.Xattrs("big")
	if err != nil {
		t.Fatal(err)
	}
	var obj string
	for _, x := range xs {
		if x.FullName() == schema.Redirect {
			obj = strings.TrimPrefix(string(x.Value), "/")
		}
	}
	if obj == "" {
		t.Fatal("no redirect on /big")
	}
	content := bytes.Repeat([]byte("0123456789"), 12346)[:123456]
	must(t, os.MkdirAll(filepath.Join(base, path.Dir(obj)), 0o755))
	must(t, os.WriteFile(filepath.Join(base, obj), content, 0o644))
	got, err := fs.ReadFile(fsys, "big")
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("big: %d bytes, %v", len(got), err)
	}
	// Without an object store the image's own data shows: zeros.
	got, err = fs.ReadFile(img.FS(""), "big")
	if err != nil || len(got) != 123456 || bytes.Count(got, []byte{0}) != len(got) {
		t.Errorf("big from the image: %d bytes, %v", len(got), err)
	}
	if _, err := fs.ReadFile(img.FS(""), "nodigest"); err != nil {
		t.Error(err)
	}
	f, err := img.FS("").Open("big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, f)
	if err != nil || n != 123456 {
		t.Errorf("reading the image's data: %d, %v", n, err)
	}
	f.Close()
	// Inline content.
	for _, n := range []int{1, 4095, 4097, 5000} {
		b, err := fs.ReadFile(fsys, fmt.Sprintf("inline%d", n))
		if err != nil || len(b) != n {
			t.Errorf("inline%d: %d, %v", n, len(b), err)
		}
	}
	// Symlinks: followed by Stat, not by Lstat.
	if fi, err := fsys.Lstat("l1"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("lstat l1: %v %v", fi, err)
	}
	if _, err := fsys.Stat("l1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat l1 (dangling): %v", err)
	}
	// Walk everything.
	n2 := 0
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		n2++
		return err
	})
	if err != nil || n2 < 600 {
		t.Errorf("walk: %d entries, %v", n2, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSuperblockChecksum(t *testing.T) {
	_, b := openImage(t, "testdata/mkfs-default.img")
	if binary.LittleEndian.Uint32(b[erofs.SuperOffset+8:])&erofs.FeatureCompatSBChksum == 0 {
		t.Skip("image has no superblock checksum")
	}
	b[erofs.SuperOffset+120] ^= 1 // reserved byte
	_, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	var e *erofs.Error
	if !errors.Is(err, erofs.ErrCorrupt) || !errors.As(err, &e) || e.Offset != erofs.SuperOffset+4 {
		t.Errorf("got %v", err)
	}
}

func TestParseDirBlock(t *testing.T) {
	block := func(names ...string) []byte {
		var b []byte
		off := len(names) * erofs.DirentSize
		for i, n := range names {
			b = binary.LittleEndian.AppendUint64(b, uint64(i+1))
			b = binary.LittleEndian.AppendUint16(b, uint16(off))
			b = append(b, erofs.FTRegFile, 0)
			off += len(n)
		}
		for _, n := range names {
			b = append(b, n...)
		}
		return b
	}
	ents, err := erofs.ParseDirBlock(append(block(".", "..", "a", "bc"), 0, 0, 0))
	if err != nil || len(ents) != 4 || ents[3].Name != "bc" || ents[2].Nid != 3 {
		t.Fatalf("%+v %v", ents, err)
	}
	bad := map[string][]byte{
		"short":          {1, 2, 3},
		"nameoff zero":   make([]byte, 16),
		"nameoff odd":    func() []byte { b := block("a"); b[8] = 13; return b }(),
		"nameoff beyond": func() []byte { b := block("a"); b[8] = 200; return b }(),
		"decreasing":     func() []byte { b := block("a", "b", "c"); b[12+8] = 40; return b }(),
		"empty last":     append(block("a", "b")[:25], 0),
		"too long":       block("a", strings.Repeat("x", 256)),
	}
	for name, b := range bad {
		if _, err := erofs.ParseDirBlock(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestInodeErrors(t *testing.T) {
	img, _ := openImage(t, "testdata/mkfs-default.img")
	for _, nid := range []uint64{1 << 40, uint64(img.Size()) / 32, ^uint64(0)} {
		_, err := img.Inode(nid)
		var e *erofs.Error
		if !errors.Is(err, erofs.ErrCorrupt) || !errors.As(err, &e) || !e.HasNid || e.Nid != nid {
			t.Errorf("nid %d: %v", nid, err)
		}
	}
	root, err := img.Inode(img.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Readlink(); !errors.Is(err, erofs.ErrNotSymlink) {
		t.Errorf("readlink on a directory: %v", err)
	}
}

// TestConcurrentReads reads one image from several goroutines.
func TestConcurrentReads(t *testing.T) {
	img, _ := openImage(t, "testdata/mkfs-noinline.img")
	fsys := img.FS("")
	want := manifestFS(t, fsys)
	done := make(chan []string)
	for range 4 {
		go func() {
			done <- manifestFS(t, fsys)
		}()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Error("concurrent reads differ")
		}
	}
}
