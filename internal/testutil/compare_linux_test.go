//go:build linux

package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSampleTreesEqual(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	opts := DefaultSampleOptions()
	opts.ACLs = true
	MakeSampleTree(t, a, opts)
	MakeSampleTree(t, b, opts)
	diffs, err := DiffTrees(a, b, CompareOptions{Hardlinks: true})
	if err != nil || len(diffs) > 0 {
		t.Fatalf("two sample trees with the same options differ: %v %q", err, diffs)
	}
	// Another seed changes the content.
	opts.Seed = 1
	c := filepath.Join(t.TempDir(), "c")
	MakeSampleTree(t, c, opts)
	diffs, _ = DiffTrees(a, c, CompareOptions{})
	if len(diffs) == 0 {
		t.Errorf("sample trees with different seeds are equal")
	}
}

func TestDiffTreesFindsDifferences(t *testing.T) {
	opts := DefaultSampleOptions()
	want := filepath.Join(t.TempDir(), "want")
	MakeSampleTree(t, want, opts)
	type mutation struct {
		name   string
		change func(t *testing.T, dir string)
		expect string // a substring of the difference reported
		root   bool   // needs root
	}
	write := func(rel string, data string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			var st unix.Stat_t
			check(t, unix.Lstat(p, &st))
			check(t, os.WriteFile(p, []byte(data), 0))
			check(t, unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim}))
		}
	}
	keepMtime := func(t *testing.T, p string, f func()) {
		var st unix.Stat_t
		check(t, unix.Lstat(p, &st))
		f()
		check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
	}
	muts := []mutation{
		{name: "content", change: write("size-0000001", "X"), expect: "content differs"},
		{name: "size", change: write("size-0000001", "XY"), expect: "size 2, want 1"},
		{name: "mode", change: func(t *testing.T, d string) { check(t, os.Chmod(filepath.Join(d, "size-0000064"), 0o600)) }, expect: "mode 0600, want 0644"},
		{name: "mtime", change: func(t *testing.T, d string) {
			check(t, unix.UtimesNano(filepath.Join(d, "size-0000064"), []unix.Timespec{{Sec: 1}, {Sec: 1, Nsec: 5}}))
		}, expect: "mtime 1.000000005"},
		{name: "xattr value", change: func(t *testing.T, d string) {
			check(t, unix.Lsetxattr(filepath.Join(d, "xattrs/file"), "user.comment", []byte("other"), 0))
		}, expect: "xattr user.comment"},
		{name: "xattr missing", change: func(t *testing.T, d string) {
			check(t, unix.Lremovexattr(filepath.Join(d, "xattrs/file"), "user.empty"))
		}, expect: "xattr user.empty missing"},
		{name: "xattr extra", change: func(t *testing.T, d string) {
			check(t, unix.Lsetxattr(filepath.Join(d, "xattrs/big"), "user.new", []byte("x"), 0))
		}, expect: "unexpected xattr user.new"},
		{name: "symlink", change: func(t *testing.T, d string) {
			p := filepath.Join(d, "links/dangling")
			keepMtime(t, filepath.Dir(p), func() {
				check(t, os.Remove(p))
				check(t, os.Symlink("does/not/exisT", p))
			})
			check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Sec: 0}, {Sec: 0}}, unix.AT_SYMLINK_NOFOLLOW))
		}, expect: "symlink to"},
		{name: "missing", change: func(t *testing.T, d string) {
			keepMtime(t, filepath.Join(d, "names"), func() { check(t, os.Remove(filepath.Join(d, "names", "with space"))) })
		}, expect: "names/with space: missing"},
		{name: "extra", change: func(t *testing.T, d string) {
			keepMtime(t, filepath.Join(d, "empty-dir"), func() { check(t, os.WriteFile(filepath.Join(d, "empty-dir/x"), nil, 0o644)) })
		}, expect: "empty-dir/x: unexpected entry"},
		{name: "type", change: func(t *testing.T, d string) {
			keepMtime(t, d, func() {
				check(t, os.Remove(filepath.Join(d, "fifo")))
				check(t, os.WriteFile(filepath.Join(d, "fifo"), nil, 0o644))
			})
		}, expect: "type regular file, want fifo"},
		{name: "hardlink", change: func(t *testing.T, d string) {
			p := filepath.Join(d, "hardlinks/inline-2")
			b, err := os.ReadFile(p)
			check(t, err)
			keepMtime(t, filepath.Dir(p), func() {
				check(t, os.Remove(p))
				check(t, os.WriteFile(p, b, 0o640))
			})
		}, expect: "links, want"},
		{name: "owner", root: true, change: func(t *testing.T, d string) {
			check(t, os.Lchown(filepath.Join(d, "size-0000064"), 1, 2))
		}, expect: "owner 1:2, want 0:0"},
		{name: "device", root: true, change: func(t *testing.T, d string) {
			p := filepath.Join(d, "dev/block")
			keepMtime(t, filepath.Dir(p), func() {
				check(t, os.Remove(p))
				check(t, unix.Mknod(p, unix.S_IFBLK|0o660, int(unix.Mkdev(7, 201))))
			})
		}, expect: "device 7:201, want 7:200"},
	}
	for _, m := range muts {
		t.Run(m.name, func(t *testing.T) {
			if m.root && !opts.Privileged {
				t.Skip("needs root")
			}
			got := filepath.Join(t.TempDir(), "got")
			MakeSampleTree(t, got, opts)
			m.change(t, got)
			diffs, err := DiffTrees(want, got, CompareOptions{Hardlinks: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) == 0 || !strings.Contains(strings.Join(diffs, "\n"), m.expect) {
				t.Errorf("differences %q, want one containing %q", diffs, m.expect)
			}
		})
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
