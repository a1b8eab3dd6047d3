// Package sample creates a small, fully deterministic directory tree that
// exercises everything a composefs image stores: files of sizes around the
// inline and block limits, symlinks, fifos, sockets, devices, an overlay
// whiteout, xattrs (shared and not, trusted.overlay.* ones that need
// escaping), long names, deep nesting, a directory spanning several blocks,
// hard links, and owners and mtimes that need extended inodes. The demo
// builds from it, and tests compare images built from it byte for byte.
package sample

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/schema"
)

// Options select parts of the tree that need privileges.
type Options struct {
	// Devices adds device nodes and a whiteout (needs CAP_MKNOD).
	Devices bool
	// Trusted adds trusted.* xattrs (needs CAP_SYS_ADMIN).
	Trusted bool
	// Owners sets owners other than the caller (needs CAP_CHOWN).
	Owners bool
}

// Full enables everything; it needs root.
var Full = Options{Devices: true, Trusted: true, Owners: true}

type entry struct {
	path   string
	kind   byte // d f l p s c b
	mode   uint32
	size   int
	target string
	rdev   uint64
	uid    int
	gid    int
	mtime  int64
	xattrs [][2]string
	link   string // hard link to this path
}

// Content returns the deterministic content of a sample file of n bytes.
func Content(name string, n int) []byte {
	b := make([]byte, n)
	seed := uint32(2166136261)
	for _, c := range []byte(name) {
		seed = (seed ^ uint32(c)) * 16777619
	}
	for i := range b {
		seed ^= seed << 13
		seed ^= seed >> 17
		seed ^= seed << 5
		b[i] = byte(seed)
	}
	// Keep small files readable text.
	if n <= 128 {
		for i := range b {
			b[i] = 'a' + b[i]%26
		}
	}
	return b
}

func entries(o Options) []entry {
	var l entryList
	l.add(entry{path: ".", kind: 'd'})
	for _, d := range []string{"files", "links", "special"} {
		l.add(entry{path: d, kind: 'd'})
	}
	l.files()
	l.links()
	l.special(o)
	l.deepAndBig()
	l.xattrs(o)
	if o.Owners {
		l.add(entry{path: "owners", kind: 'd', uid: 1000, gid: 1000})
		l.add(entry{path: "owners/small-ids", kind: 'f', size: 100, uid: 1000, gid: 100})
		l.add(entry{path: "owners/big-ids", kind: 'f', size: 100, uid: 100000, gid: 70000})
		l.add(entry{path: "owners/link", kind: 'l', target: "big-ids", uid: 65534, gid: 65534})
	}
	return l
}

// t0 is the sample's default mtime.
const t0 = 1700000000

// entryList collects the sample's entries in creation order.
type entryList []entry

// add appends e with the default mtime and mode filled in.
func (l *entryList) add(e entry) {
	if e.mtime == 0 {
		e.mtime = t0
	}
	if e.mode == 0 {
		switch e.kind {
		case 'd':
			e.mode = 0o755
		case 'l':
			e.mode = 0o777
		default:
			e.mode = 0o644
		}
	}
	*l = append(*l, e)
}

// files: sizes around the inline and block limits, modes, names, a hard link.
func (l *entryList) files() {
	for _, n := range []int{0, 1, 63, 64, 65, 100, 2048, 2049, 4095, 4096, 4097, 8192, 100000, 1 << 20} {
		l.add(entry{path: fmt.Sprintf("files/size-%d", n), kind: 'f', size: n})
	}
	l.add(entry{path: "files/same-a", kind: 'f', size: 5000})
	l.add(entry{path: "files/same-b", kind: 'f', size: 5000}) // same content as same-a? no: content depends on name
	l.add(entry{path: "files/exec", kind: 'f', size: 300, mode: 0o755})
	l.add(entry{path: "files/setuid", kind: 'f', size: 70, mode: 0o4755})
	l.add(entry{path: "files/sticky-dir", kind: 'd', mode: 0o1777})
	l.add(entry{path: "files/newer", kind: 'f', size: 90, mtime: t0 + 86400})
	l.add(entry{path: "files/nanos", kind: 'f', size: 10, mtime: -1}) // gets nanoseconds below
	l.add(entry{path: "files/with space and\ttab", kind: 'f', size: 12})
	l.add(entry{path: "files/ünïcødé-名前", kind: 'f', size: 80})
	l.add(entry{path: "files/" + strings.Repeat("L", 255), kind: 'f', size: 200})
	l.add(entry{path: "files/hardlink-target", kind: 'f', size: 500})
	l.add(entry{path: "files/hardlink-second", kind: 'h', link: "files/hardlink-target"})
}

// links: symlinks short, dangling, long and of the longest length.
func (l *entryList) links() {
	l.add(entry{path: "links/short", kind: 'l', target: "../files/size-100"})
	l.add(entry{path: "links/dangling", kind: 'l', target: "/nonexistent/path"})
	l.add(entry{path: "links/long", kind: 'l', target: strings.Repeat("long/", 400) + "end"})
	l.add(entry{path: "links/max", kind: 'l', target: strings.Repeat("m", 4095)})
	l.add(entry{path: "links/dir", kind: 'l', target: "../deep"})
}

// special: a FIFO, a socket and, with devices, device nodes and a whiteout.
func (l *entryList) special(o Options) {
	l.add(entry{path: "special/fifo", kind: 'p', mode: 0o600})
	l.add(entry{path: "special/socket", kind: 's', mode: 0o755})
	if !o.Devices {
		return
	}
	l.add(entry{path: "special/null", kind: 'c', mode: 0o666, rdev: unix.Mkdev(1, 3)})
	l.add(entry{path: "special/sda", kind: 'b', mode: 0o660, rdev: unix.Mkdev(8, 0)})
	l.add(entry{path: "special/bigdev", kind: 'c', mode: 0o600, rdev: unix.Mkdev(4095, 1048575)})
	l.add(entry{path: "overlay", kind: 'd'})
	l.add(entry{path: "overlay/whiteout", kind: 'c', mode: 0o000, rdev: 0})
	l.add(entry{path: "overlay/visible", kind: 'f', size: 20})
}

// deepAndBig: 40 nested directories and one directory of 600 entries.
func (l *entryList) deepAndBig() {
	deep := "deep"
	l.add(entry{path: deep, kind: 'd'})
	for i := 0; i < 40; i++ {
		deep += fmt.Sprintf("/level-%02d", i)
		l.add(entry{path: deep, kind: 'd', mode: 0o750})
	}
	l.add(entry{path: deep + "/bottom", kind: 'f', size: 1000})

	l.add(entry{path: "bigdir", kind: 'd'})
	for i := 0; i < 600; i++ {
		name := fmt.Sprintf("bigdir/entry-%04d-%s", i, strings.Repeat("x", i%40))
		if i%3 == 0 {
			l.add(entry{path: name, kind: 'd'})
		} else {
			l.add(entry{path: name, kind: 'f', size: i % 130})
		}
	}
}

// xattrs: shared, unique, binary, empty and big values; with Trusted,
// overlay xattrs (escaped in the image) and an ACL.
func (l *entryList) xattrs(o Options) {
	xd := "xattrs"
	l.add(entry{path: xd, kind: 'd', xattrs: [][2]string{{"user.dir", "on a directory"}}})
	for i := 0; i < 10; i++ {
		l.add(entry{path: fmt.Sprintf("%s/shared-%d", xd, i), kind: 'f', size: 10 * i,
			xattrs: [][2]string{{"user.shared", "the same value on every file"}, {"user.unique", fmt.Sprintf("value %d", i)}}})
	}
	l.add(entry{path: xd + "/binary", kind: 'f', size: 5, xattrs: [][2]string{{"user.bin", "\x00\x01\xff=\n\\ "}}})
	l.add(entry{path: xd + "/empty-value", kind: 'f', size: 5, xattrs: [][2]string{{"user.empty", ""}}})
	l.add(entry{path: xd + "/big-value", kind: 'f', size: 5, xattrs: [][2]string{{"user.big", strings.Repeat("v", 3000)}}})
	if !o.Trusted {
		return
	}
	l.add(entry{path: xd + "/trusted", kind: 'f', size: 300, xattrs: [][2]string{
		{schema.Opaque, "y"}, {schema.Redirect, "/elsewhere"}, {"trusted.other", "t"}}})
	l.add(entry{path: xd + "/acl", kind: 'f', size: 10, xattrs: [][2]string{
		// ACL_USER_OBJ rw-, ACL_USER 1000 r--, ACL_GROUP_OBJ r--, ACL_MASK r--, ACL_OTHER r--
		{"system.posix_acl_access", "\x02\x00\x00\x00" +
			"\x01\x00\x06\x00\xff\xff\xff\xff" +
			"\x02\x00\x04\x00\xe8\x03\x00\x00" +
			"\x04\x00\x04\x00\xff\xff\xff\xff" +
			"\x10\x00\x04\x00\xff\xff\xff\xff" +
			"\x20\x00\x04\x00\xff\xff\xff\xff"}}})
}

// Create builds the sample tree in dir, which must be empty or absent.
func Create(dir string, o Options) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	es := entries(o)
	for _, e := range es {
		p := filepath.Join(dir, e.path)
		if e.kind != 'd' || e.path != "." {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		var err error
		switch e.kind {
		case 'd':
			err = os.MkdirAll(p, 0o755)
		case 'f':
			err = os.WriteFile(p, Content(e.path, e.size), 0o644)
		case 'h':
			err = os.Link(filepath.Join(dir, e.link), p)
		case 'l':
			err = os.Symlink(e.target, p)
		case 'p':
			err = unix.Mkfifo(p, e.mode)
		case 's':
			err = unix.Mknod(p, unix.S_IFSOCK|e.mode, 0)
		case 'c':
			err = unix.Mknod(p, unix.S_IFCHR|e.mode, int(e.rdev))
		case 'b':
			err = unix.Mknod(p, unix.S_IFBLK|e.mode, int(e.rdev))
		}
		if err != nil {
			return fmt.Errorf("sample: %s: %w", e.path, err)
		}
		for _, x := range e.xattrs {
			if err := unix.Lsetxattr(p, x[0], []byte(x[1]), 0); err != nil {
				return fmt.Errorf("sample: %s: xattr %s: %w", e.path, x[0], err)
			}
		}
	}
	// Metadata last, deepest first, so creating children doesn't change a
	// directory's mtime afterwards.
	sort.SliceStable(es, func(i, j int) bool { return strings.Count(es[i].path, "/") > strings.Count(es[j].path, "/") })
	for _, e := range es {
		if e.kind == 'h' {
			continue
		}
		p := filepath.Join(dir, e.path)
		if e.kind != 'l' {
			if err := unix.Fchmodat(unix.AT_FDCWD, p, e.mode, 0); err != nil {
				return fmt.Errorf("sample: %s: %w", e.path, err)
			}
		}
		if o.Owners {
			if err := unix.Lchown(p, e.uid, e.gid); err != nil {
				return fmt.Errorf("sample: %s: %w", e.path, err)
			}
			if e.kind != 'l' && e.mode&0o6000 != 0 {
				// chown clears setuid/setgid: set the mode again.
				if err := unix.Fchmodat(unix.AT_FDCWD, p, e.mode, 0); err != nil {
					return fmt.Errorf("sample: %s: %w", e.path, err)
				}
			}
		}
		ts := unix.Timespec{Sec: e.mtime}
		if e.mtime < 0 {
			ts = unix.Timespec{Sec: 1700000000, Nsec: 123456789}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("sample: %s: %w", e.path, err)
		}
	}
	return nil
}
