package rootfs_test

import (
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

func add(t *testing.T, parent *tree.Node, name string, mode uint32, mtime int64) *tree.Node {
	t.Helper()
	n := tree.New(mode)
	n.MtimeSec = mtime
	if err := parent.AddChild(name, n); err != nil {
		t.Fatal(err)
	}
	return n
}

func xattrNames(n *tree.Node) []string {
	var names []string
	for _, x := range n.Xattrs {
		names = append(names, x.Name)
	}
	return names
}

// sampleRoot is a container root: a root directory with its own
// metadata, /usr, /run with files (one of them a hard link to a file
// outside, one the inode of a file outside), and host xattrs everywhere.
func sampleRoot(t *testing.T) *tree.Node {
	root := tree.New(tree.ModeDir | 0o700)
	root.MtimeSec, root.UID = 1, 5
	root.SetXattr("security.selinux", []byte("host_t"))
	usr := add(t, root, "usr", tree.ModeDir|0o755, 1000)
	usr.MtimeNsec = 7
	usr.SetXattr("user.keep", []byte("u"))
	usr.SetXattr("security.selinux", []byte("usr_t"))
	usr.SetXattr("security.capability", []byte("cap"))
	etc := add(t, root, "etc", tree.ModeDir|0o755, 2)
	outside := add(t, etc, "outside", tree.ModeRegular|0o644, 3)
	outside.SetContent([]byte("outside"))
	run := add(t, root, "run", tree.ModeDir|0o755, 4)
	add(t, run, "sub", tree.ModeDir|0o755, 5)
	inRun := add(t, run, "inode", tree.ModeRegular|0o600, 6)
	inRun.SetContent([]byte("held in /run"))
	inRun.SetXattr("user.x", []byte("1"))
	for _, name := range []string{"a", "b"} { // two names outside of /run/inode
		if err := add(t, etc, name, tree.ModeRegular, 0).MakeHardlink(inRun); err != nil {
			t.Fatal(err)
		}
	}
	if err := add(t, run, "link", tree.ModeRegular, 0).MakeHardlink(outside); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestTransformForOCI(t *testing.T) {
	for _, tc := range []struct {
		filter   rootfs.XattrFilter
		rootWant []string
	}{
		{rootfs.AllowlistOnly, []string{"security.capability"}},
		{rootfs.KeepUserXattrs, []string{"user.keep", "security.capability"}},
	} {
		t.Run(tc.filter.String(), func(t *testing.T) {
			root := sampleRoot(t)
			if err := rootfs.TransformForOCI(root, tc.filter); err != nil {
				t.Fatal(err)
			}
			usr := root.Lookup("usr")
			if root.Mode != usr.Mode || root.MtimeSec != 1000 || root.MtimeNsec != 7 || root.UID != 0 {
				t.Errorf("root: mode %o mtime %d.%d uid %d; want /usr's", root.Mode, root.MtimeSec, root.MtimeNsec, root.UID)
			}
			if got := xattrNames(root); !reflect.DeepEqual(got, tc.rootWant) {
				t.Errorf("root xattrs %q, want %q", got, tc.rootWant)
			}
			run := root.Lookup("run")
			if len(run.Children) != 0 || run.MtimeSec != 1000 || run.MtimeNsec != 7 {
				t.Errorf("/run: %d children, mtime %d.%d; want empty with /usr's mtime", len(run.Children), run.MtimeSec, run.MtimeNsec)
			}
			etc := root.Lookup("etc")
			a, b, outside := etc.Lookup("a"), etc.Lookup("b"), etc.Lookup("outside")
			if a.LinkTo != nil || string(a.Content) != "held in /run" || a.Nlink != 2 || a.Mode != tree.ModeRegular|0o600 {
				t.Errorf("/etc/a: link %v, content %q, nlink %d, mode %o; want the inode of the removed /run/inode, 2 names", a.LinkTo != nil, a.Content, a.Nlink, a.Mode)
			}
			if b.LinkTo != a {
				t.Errorf("/etc/b links to %v, want /etc/a", b.LinkTo)
			}
			if outside.Nlink != 1 {
				t.Errorf("/etc/outside nlink %d, want 1 (its /run name removed)", outside.Nlink)
			}
			wantA := []string(nil)
			if tc.filter == rootfs.KeepUserXattrs {
				wantA = []string{"user.x"}
			}
			if got := xattrNames(a); !reflect.DeepEqual(got, wantA) {
				t.Errorf("/etc/a xattrs %q, want %q", got, wantA)
			}
			if err := image.Write(io.Discard, root, image.DefaultOptions); err != nil {
				t.Errorf("the transformed tree does not make an image: %v", err)
			}
		})
	}
}

func TestTransformForOCIRefuses(t *testing.T) {
	noUsr := tree.New(tree.ModeDir | 0o755)
	add(t, noUsr, "etc", tree.ModeDir|0o755, 0)
	if err := rootfs.TransformForOCI(noUsr, rootfs.AllowlistOnly); !errors.Is(err, rootfs.ErrNoUsr) {
		t.Errorf("no /usr: %v", err)
	}
	usrFile := tree.New(tree.ModeDir | 0o755)
	add(t, usrFile, "usr", tree.ModeRegular|0o644, 0)
	if err := rootfs.TransformForOCI(usrFile, rootfs.AllowlistOnly); !errors.Is(err, rootfs.ErrNoUsr) {
		t.Errorf("/usr a file: %v", err)
	}
	runLink := tree.New(tree.ModeDir | 0o755)
	runLink.MtimeSec = 9
	add(t, runLink, "usr", tree.ModeDir|0o700, 1)
	if err := add(t, runLink, "run", tree.ModeSymlink|0o777, 0).SetSymlink("/var/run"); err != nil {
		t.Fatal(err)
	}
	if err := rootfs.TransformForOCI(runLink, rootfs.AllowlistOnly); !errors.Is(err, rootfs.ErrNotDir) || runLink.MtimeSec != 9 {
		t.Errorf("/run a symlink: %v (root mtime %d: must be unchanged)", err, runLink.MtimeSec)
	}
}

func TestParseXattrFilter(t *testing.T) {
	for _, f := range []rootfs.XattrFilter{rootfs.AllowlistOnly, rootfs.KeepUserXattrs} {
		if g, err := rootfs.ParseXattrFilter(f.String()); err != nil || g != f {
			t.Errorf("ParseXattrFilter(%q) = %v, %v", f, g, err)
		}
	}
	if _, err := rootfs.ParseXattrFilter("bogus"); !errors.Is(err, rootfs.ErrFilter) {
		t.Errorf("bogus: %v", err)
	}
}
