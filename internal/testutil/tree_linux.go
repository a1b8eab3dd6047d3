//go:build linux

package testutil

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MakeSampleTree fills the directory dir (created if needed) with a tree
// meant to exercise composefs: regular files of the SampleSizes, with
// duplicated content; many permission bits (setuid, setgid, sticky, 0000);
// symlinks (relative, absolute, dangling, to a directory, a 1000-byte
// target); a FIFO; a 255-byte name and names with spaces, commas, colons,
// backslashes, '=' and UTF-8; directories nested 32 deep, one with 600
// entries, an empty one; user.* xattrs (small, empty, 2000 bytes, on
// directories); distinct mtimes with nanoseconds, set last; and what opts
// adds. It fails the test on any error.
func MakeSampleTree(t testing.TB, dir string, opts SampleOptions) {
	t.Helper()
	m := &maker{t: t, root: dir, rng: rand.New(rand.NewPCG(opts.Seed, 0x676f636673)), when: time.Unix(1700000000, 123456789)}
	m.mkdir("", 0o755)
	m.files()
	m.linksFifoNames()
	m.deepAndMany()
	m.xattrs()
	if opts.Hardlinks {
		m.hardlinks()
	}
	if opts.Privileged {
		m.privileged(opts)
	}
	if opts.ACLs {
		m.acls()
	}
	m.settimes()
}

// files: the SampleSizes, duplicated content, permission bits.
func (m *maker) files() {
	for _, size := range SampleSizes {
		m.file(sizeName(size), size, 0o644)
	}
	m.content("dup-a", m.random(5000), 0o644)
	m.content("dup-b", m.read("dup-a"), 0o600)
	m.content("small-dup-a", []byte("same small content\n"), 0o644)
	m.content("small-dup-b", []byte("same small content\n"), 0o644)
	m.file("mode-0000", 10, 0)
	m.file("mode-0755", 100, 0o755)
	m.file("mode-4755-setuid", 100, 0o4755)
	m.file("mode-2755-setgid", 100, 0o2755)
	m.file("mode-6711", 10, 0o6711)
	m.file("mode-0444", 5000, 0o444)

	m.mkdir("perm", 0o755)
	m.mkdir("perm/sticky-1777", 0o1777)
	m.mkdir("perm/private-0700", 0o700)
	m.mkdir("perm/setgid-2775", 0o2775)
	m.file("perm/sticky-1777/file", 3, 0o666)
	m.mkdir("empty-dir", 0o755)
}

// linksFifoNames: symlinks of every kind, a FIFO, unusual names.
func (m *maker) linksFifoNames() {
	m.mkdir("links", 0o755)
	m.symlink("links/relative", "../"+sizeName(64))
	m.symlink("links/absolute", "/etc/hostname")
	m.symlink("links/dangling", "does/not/exist")
	m.symlink("links/to-dir", "../perm")
	m.symlink("links/long-target", strings.Repeat("long/", 200))
	m.symlink("links/dot", ".")

	m.fifo("fifo", 0o644)

	m.mkdir("names", 0o755)
	long := strings.Repeat("n", 255)
	m.file("names/"+long, 10, 0o644)
	m.file("names/"+strings.Repeat("x", 200)+"-external", 1000, 0o644)
	for _, n := range []string{"with space", "comma,name", "colon:name", `back\slash`, "equals=sign", "ünïcødé-名前", ".hidden", "-dash", "tab\there"} {
		m.file("names/"+n, 70, 0o644)
	}
}

// deepAndMany: directories 32 deep and one with 600 entries.
func (m *maker) deepAndMany() {
	p := "deep"
	m.mkdir(p, 0o755)
	for i := range 32 {
		p += "/d" + string(rune('a'+i%26))
		m.mkdir(p, 0o755)
	}
	m.file(p+"/leaf", 200, 0o644)
	m.file(p+"/leaf-inline", 20, 0o644)

	m.mkdir("many", 0o755)
	for i := range 600 {
		name := "many/entry-" + pad(i)
		switch i % 3 {
		case 0:
			m.file(name, 0, 0o644)
		case 1:
			m.file(name, 1+i%60, 0o644)
		default:
			m.symlink(name, "target-"+pad(i))
		}
	}
}

// xattrs: user.* xattrs, some shared between files.
func (m *maker) xattrs() {
	m.mkdir("xattrs", 0o755)
	m.file("xattrs/file", 300, 0o644)
	m.xattr("xattrs/file", "user.comment", []byte("a comment"))
	m.xattr("xattrs/file", "user.empty", nil)
	m.xattr("xattrs/file", "user.binary", []byte{0, 1, 2, 0xff, 0})
	m.file("xattrs/big", 10, 0o644)
	m.xattr("xattrs/big", "user.big", m.random(2000))
	m.xattr("xattrs", "user.on-dir", []byte("dir value"))
	m.file("xattrs/shared-1", 10, 0o644)
	m.file("xattrs/shared-2", 10, 0o644)
	for _, f := range []string{"xattrs/shared-1", "xattrs/shared-2", "xattrs/file"} {
		m.xattr(f, "user.shared", []byte("the same on several files"))
	}
}

// hardlinks: hard links to external, inline and empty files and a symlink.
func (m *maker) hardlinks() {
	m.mkdir("hardlinks", 0o755)
	m.file("hardlinks/external", 5000, 0o644)
	m.link("hardlinks/external", "hardlinks/external-2")
	m.link("hardlinks/external", "links/external-3")
	m.file("hardlinks/inline", 10, 0o640)
	m.link("hardlinks/inline", "hardlinks/inline-2")
	m.file("hardlinks/empty", 0, 0o644)
	m.link("hardlinks/empty", "hardlinks/empty-2")
	m.symlink("hardlinks/symlink", "external")
	m.link("hardlinks/symlink", "hardlinks/symlink-2")
}

// privileged: device nodes, a whiteout, trusted/security xattrs, owners.
func (m *maker) privileged(opts SampleOptions) {
	m.mkdir("dev", 0o755)
	m.mknod("dev/null-like", unix.S_IFCHR|0o666, 1, 3)
	m.mknod("dev/block", unix.S_IFBLK|0o660, 7, 200)
	m.mknod("dev/big-numbers", unix.S_IFCHR|0o600, 4095, 1048575)
	if !opts.NoWhiteout {
		m.mknod("dev/whiteout", unix.S_IFCHR, 0, 0)
	}
	m.xattr("xattrs/file", "trusted.gocfs", []byte("trusted value"))
	m.xattr("xattrs/file", "security.gocfs", []byte("security value"))
	m.xattr("links/relative", "trusted.on-symlink", []byte("x"))
	m.xattr("dev/null-like", "trusted.on-device", []byte("y"))
	m.mkdir("owners", 0o755)
	m.file("owners/1234-5678", 100, 0o644)
	m.chown("owners/1234-5678", 1234, 5678)
	m.file("owners/nobody", 5000, 0o644)
	m.chown("owners/nobody", 65534, 65534)
	m.mkdir("owners/dir-1000", 0o750)
	m.chown("owners/dir-1000", 1000, 1000)
	m.symlink("owners/symlink-42", "target")
	m.chown("owners/symlink-42", 42, 43)
	m.file("owners/big-ids", 1, 0o644)
	m.chown("owners/big-ids", 4000000000, 3000000000)
}

// acls: POSIX access and default ACLs.
func (m *maker) acls() {
	m.mkdir("acl", 0o755)
	m.file("acl/file", 100, 0o640)
	m.xattr("acl/file", "system.posix_acl_access", posixACL(0o6, 0o4, 0o4, 1234))
	m.mkdir("acl/dir", 0o750)
	m.xattr("acl/dir", "system.posix_acl_default", posixACL(0o7, 0o5, 0o0, 1000))
}

// posixACL encodes a POSIX ACL xattr value: owner, group and other
// permissions, and one named user with read permission.
func posixACL(owner, group, other uint16, user uint32) []byte {
	type entry struct {
		tag, perm uint16
		id        uint32
	}
	const undefined = 0xffffffff
	ents := []entry{
		{0x01, owner, undefined},     // ACL_USER_OBJ
		{0x02, 4, user},              // ACL_USER
		{0x04, group, undefined},     // ACL_GROUP_OBJ
		{0x10, group | 4, undefined}, // ACL_MASK
		{0x20, other, undefined},     // ACL_OTHER
	}
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

func sizeName(size int) string { return "size-" + pad(size) }

func pad(i int) string {
	s := []byte("0000000")
	for j := len(s) - 1; i > 0 && j >= 0; j-- {
		s[j] = byte('0' + i%10)
		i /= 10
	}
	return string(s)
}

// maker makes the entries of a sample tree, remembering them so that their
// mtimes can be set at the end, directories last.
type maker struct {
	t     testing.TB
	root  string
	rng   *rand.Rand
	when  time.Time
	paths []string
}

func (m *maker) path(rel string) string { return filepath.Join(m.root, rel) }

func (m *maker) check(what, rel string, err error) {
	if err != nil {
		m.t.Helper()
		m.t.Fatalf("sample tree: %s %s: %v", what, rel, err)
	}
}

func (m *maker) random(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := m.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func (m *maker) mkdir(rel string, mode uint32) {
	err := os.MkdirAll(m.path(rel), 0o755)
	if err == nil {
		err = unix.Chmod(m.path(rel), mode)
	}
	m.check("mkdir", rel, err)
	m.paths = append(m.paths, rel)
}

func (m *maker) file(rel string, size int, mode uint32) {
	m.content(rel, m.random(size), mode)
}

func (m *maker) content(rel string, data []byte, mode uint32) {
	err := os.WriteFile(m.path(rel), data, 0o600)
	if err == nil {
		err = unix.Chmod(m.path(rel), mode)
	}
	m.check("write", rel, err)
	m.paths = append(m.paths, rel)
}

func (m *maker) read(rel string) []byte {
	b, err := os.ReadFile(m.path(rel))
	m.check("read", rel, err)
	return b
}

func (m *maker) symlink(rel, target string) {
	m.check("symlink", rel, os.Symlink(target, m.path(rel)))
	m.paths = append(m.paths, rel)
}

func (m *maker) link(old, rel string) {
	m.check("link", rel, os.Link(m.path(old), m.path(rel)))
}

func (m *maker) fifo(rel string, mode uint32) {
	err := unix.Mkfifo(m.path(rel), 0o600)
	if err == nil {
		err = unix.Chmod(m.path(rel), mode)
	}
	m.check("mkfifo", rel, err)
	m.paths = append(m.paths, rel)
}

func (m *maker) mknod(rel string, mode uint32, major, minor uint32) {
	err := unix.Mknod(m.path(rel), mode, int(unix.Mkdev(major, minor)))
	if err == nil {
		err = unix.Chmod(m.path(rel), mode&0o7777)
	}
	m.check("mknod", rel, err)
	m.paths = append(m.paths, rel)
}

func (m *maker) xattr(rel, name string, value []byte) {
	m.check("setxattr "+name, rel, unix.Lsetxattr(m.path(rel), name, value, 0))
}

func (m *maker) chown(rel string, uid, gid int) {
	// chown clears setuid bits; no sample file has both.
	m.check("chown", rel, os.Lchown(m.path(rel), uid, gid))
}

// settimes gives every entry its own mtime (and atime), with nanoseconds:
// files first, then directories from the deepest up, since making an
// entry changes its directory's mtime.
func (m *maker) settimes() {
	var dirs []string
	for _, rel := range m.paths {
		fi, err := os.Lstat(m.path(rel))
		m.check("lstat", rel, err)
		if fi.IsDir() {
			dirs = append(dirs, rel)
			continue
		}
		m.touch(rel)
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/")
	})
	for _, rel := range dirs {
		if rel != "" {
			m.touch(rel)
		}
	}
	m.touch("")
}

func (m *maker) touch(rel string) {
	m.when = m.when.Add(time.Hour + 1234567*time.Nanosecond)
	ts := []unix.Timespec{unix.NsecToTimespec(m.when.UnixNano()), unix.NsecToTimespec(m.when.UnixNano())}
	m.check("utimes", rel, unix.UtimesNanoAt(unix.AT_FDCWD, m.path(rel), ts, unix.AT_SYMLINK_NOFOLLOW))
}
