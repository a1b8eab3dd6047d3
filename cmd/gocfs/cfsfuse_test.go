package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
)

func TestParseCfsFuseOptions(t *testing.T) {
	o, err := parseCfsFuseOptions([]string{`source=/a\,b.cfs,basedir=/store`, "allow_other,dev,noacl", "verity,ro,max_threads=4,fsname=x,clone_fd"})
	if err != nil {
		t.Fatal(err)
	}
	want := mount.Options{Basedirs: []string{"/store"}, Method: mount.FUSE, Verity: mount.VerityRequire, AllowDevices: true}
	want.FUSE.AllowOther = true
	if o.source != "/a,b.cfs" || !o.noACL || !reflect.DeepEqual(o.opts, want) {
		t.Errorf("got source %q, noacl %v, %+v; want %+v", o.source, o.noACL, o.opts, want)
	}
	for _, tc := range []struct {
		opts []string
		want string
	}{
		{[]string{"source=a,basedir=b,bogus,nothing=1"}, "unknown option(s): '-o bogus', '-o nothing=1'"},
		{[]string{"source=a,basedir=b,rw"}, "read-only"},
		{[]string{"source=a,basedir=b,allow_root"}, "not supported"},
		{[]string{"basedir=b"}, "source=IMAGE is required"},
		{[]string{"source=a"}, "basedir=DIR is required"},
	} {
		if _, err := parseCfsFuseOptions(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("-o %q: %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
}

// randomTree makes a random tree at dir, as upstream's tests/gendir does
// and with more: every file type (whiteouts and devices too), random
// names (any byte but '/' and NUL), modes with setuid bits, owners, user.*
// and trusted.* xattrs, hard links, mtimes to the nanosecond.
func randomTree(t *testing.T, dir string, seed uint64) {
	g := &treeGen{t: t, rng: rand.New(rand.NewPCG(seed, 0x636673)), root: dir}
	g.check(os.Mkdir(dir, 0o755))
	for len(g.made) < 150 {
		g.dir("", 0)
	}
	for i := len(g.made) - 1; i >= 0; i-- {
		p := filepath.Join(dir, g.made[i])
		ts := []unix.Timespec{{}, {Sec: g.rng.Int64N(2e9), Nsec: g.rng.Int64N(1e9)}}
		ts[0] = ts[1]
		g.check(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

type treeGen struct {
	t     *testing.T
	rng   *rand.Rand
	root  string
	made  []string // relative paths, in creation order
	files []string // regular files, for hard links
}

func (g *treeGen) check(err error) {
	if err != nil {
		g.t.Helper()
		g.t.Fatal(err)
	}
}

func (g *treeGen) name() string {
	const odd = " \n\t\\=\"'$*?é中\xff\x01"
	var b strings.Builder
	for n := 1 + g.rng.IntN(30); b.Len() < n; {
		if g.rng.IntN(10) == 0 {
			b.WriteByte(odd[g.rng.IntN(len(odd))])
		} else {
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789_-."[g.rng.IntN(39)])
		}
	}
	if s := b.String(); s != "." && s != ".." {
		return s
	}
	return "dot"
}

func (g *treeGen) dir(rel string, depth int) {
	for range g.rng.IntN(12) {
		p := filepath.Join(rel, g.name())
		if _, err := os.Lstat(filepath.Join(g.root, p)); err == nil {
			continue
		}
		if k := g.rng.IntN(100); k < 12 && depth < 4 {
			g.check(os.Mkdir(filepath.Join(g.root, p), 0o700))
			g.made = append(g.made, p)
			g.dir(p, depth+1)
			g.check(unix.Chmod(filepath.Join(g.root, p), uint32(g.rng.IntN(0o1000)|0o700)))
		} else {
			g.leaf(p, k)
		}
		g.decorate(p)
	}
}

// leaf makes a file that is not a directory at p, of a kind k picks.
func (g *treeGen) leaf(p string, k int) {
	full := filepath.Join(g.root, p)
	mode := uint32(g.rng.IntN(0o10000))
	switch {
	case k < 55:
		size := g.rng.IntN(300)
		if g.rng.IntN(10) == 0 {
			size = g.rng.IntN(1 << 20)
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(g.rng.Uint32())
		}
		g.check(os.WriteFile(full, data, 0o600))
		g.check(unix.Chmod(full, mode))
		g.files = append(g.files, p)
	case k < 65:
		g.check(os.Symlink(g.name(), full))
	case k < 72 && len(g.files) > 0:
		g.check(os.Link(filepath.Join(g.root, g.files[g.rng.IntN(len(g.files))]), full))
		return // the inode is decorated already
	case k < 77:
		g.check(unix.Mkfifo(full, mode))
	case k < 84:
		g.check(unix.Mknod(full, unix.S_IFCHR|mode, int(unix.Mkdev(1+g.rng.Uint32N(255), g.rng.Uint32N(255)))))
	case k < 88:
		g.check(unix.Mknod(full, unix.S_IFBLK|mode, int(unix.Mkdev(1+g.rng.Uint32N(255), g.rng.Uint32N(255)))))
	default:
		g.check(unix.Mknod(full, unix.S_IFCHR|mode, 0)) // a whiteout
	}
	g.made = append(g.made, p)
}

// decorate gives p random xattrs and owner.
func (g *treeGen) decorate(p string) {
	full := filepath.Join(g.root, p)
	fi, err := os.Lstat(full)
	g.check(err)
	for range g.rng.IntN(3) {
		name := "trusted." + g.name()
		if fi.Mode().IsRegular() || fi.IsDir() {
			name = []string{"user.", "trusted.", "trusted.overlay."}[g.rng.IntN(3)] + strings.NewReplacer("\n", "", "\x00", "").Replace(g.name())
		}
		value := []byte(g.name())
		if g.rng.IntN(4) == 0 {
			value = bytes.Repeat([]byte{byte(g.rng.Uint32())}, g.rng.IntN(200))
		}
		g.check(unix.Lsetxattr(full, name, value, 0))
	}
	g.check(unix.Lchown(full, g.rng.IntN(3)*1000, g.rng.IntN(3)*1000))
}

// TestComposefsFuseRandom does what upstream's tests/test-random-fuse.sh
// does, through gocfs's links alone: random trees, mkcomposefs,
// composefs-dump and "composefs-info dump | mkcomposefs --from-file"
// giving the same image byte for byte, composefs-fuse mounting it
// (composefs-fuse -o source=IMAGE,basedir=DIR MNT, in the background) with
// the same tree as the source, and an image of the mount mounting to the
// same tree again.
func TestComposefsFuseRandom(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	c := newCLI(t)
	links := filepath.Join(t.TempDir(), "bin")
	c.ok("install-links", "--mount-helper-dir=", links)
	tool := func(name string) *cli { return &cli{t: t, bin: filepath.Join(links, name)} }
	mkcfs, info, dump, fuse := tool("mkcomposefs"), tool("composefs-info"), tool("composefs-dump"), tool("composefs-fuse")
	for seed := range uint64(2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			work := t.TempDir()
			root, store := filepath.Join(work, "root"), filepath.Join(work, "objects")
			randomTree(t, root, seed)
			img := filepath.Join(work, "root.cfs")
			mkcfs.ok("--preserve-hardlinks", "--digest-store="+store, root, img)
			dump.ok(img, filepath.Join(work, "dump.cfs"))
			sameBytes(t, img, filepath.Join(work, "dump.cfs"), "composefs-dump")
			dumped := info.ok("dump", img)
			mkcfs.runIn(dumped, "--from-file", "-", filepath.Join(work, "fromdump.cfs"))
			sameBytes(t, img, filepath.Join(work, "fromdump.cfs"), "composefs-info dump | mkcomposefs --from-file")

			mnt := mountPoint(t)
			fuse.ok("-o", "source="+img+",basedir="+store, mnt)
			if mi := testutil.MountAt(t, mnt); mi == nil || mi.FSType != "fuse.composefs" {
				t.Fatalf("composefs-fuse: mount %+v", mi)
			}
			opts := testutil.CompareOptions{ComposefsWhiteouts: true, Hardlinks: true}
			testutil.CompareTrees(t, root, mnt, opts)
			again := filepath.Join(work, "fuse.cfs")
			mkcfs.ok("--preserve-hardlinks", "--digest-store="+store, mnt, again)
			mnt2 := mountPoint(t)
			fuse.ok("-o", "source="+again+",basedir="+store, mnt2)
			testutil.CompareTrees(t, mnt, mnt2, testutil.CompareOptions{Hardlinks: true})
			for _, m := range []string{mnt, mnt2} {
				if err := unix.Unmount(m, 0); err != nil {
					t.Errorf("umount %s: %v", m, err)
				}
			}
		})
	}
}

func sameBytes(t *testing.T, a, b, what string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s: not the same image (%d and %d bytes)", what, len(x), len(y))
	}
}
