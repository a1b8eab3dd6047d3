package rootfs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// bootRoot is a root with /usr, /boot and /sysroot holding files (one of
// /sysroot's is a hard link whose inode /etc keeps), and SELinux labels.
func bootRoot(t *testing.T) *tree.Node {
	root := tree.New(tree.ModeDir | 0o755)
	root.SetXattr("security.selinux", []byte("root_t"))
	usr := add(t, root, "usr", tree.ModeDir|0o755, 1000)
	usr.MtimeNsec = 9
	bin := add(t, usr, "bin", tree.ModeRegular|0o755, 1)
	bin.SetContent([]byte("sh"))
	bin.SetXattr("security.selinux", []byte("bin_t"))
	bin.SetXattr("security.capability", []byte("cap"))
	boot := add(t, root, "boot", tree.ModeDir|0o755, 2)
	add(t, boot, "vmlinuz", tree.ModeRegular|0o644, 3).SetContent([]byte("kernel"))
	sysroot := add(t, root, "sysroot", tree.ModeDir|0o755, 4)
	held := add(t, sysroot, "held", tree.ModeRegular|0o644, 5)
	held.SetContent([]byte("held"))
	etc := add(t, root, "etc", tree.ModeDir|0o755, 6)
	if err := add(t, etc, "link", tree.ModeRegular, 0).MakeHardlink(held); err != nil {
		t.Fatal(err)
	}
	return root
}

func dumpOf(t *testing.T, root *tree.Node) string {
	t.Helper()
	var b strings.Builder
	w := dump.NewWriter(&b)
	if err := w.WriteTree(root); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// composefs-rs's transform_for_boot (crates/composefs-boot/src/lib.rs,
// empty_toplevel_dirs; selabel.rs, strip_selinux_labels without a policy).
func TestTransformForBoot(t *testing.T) {
	root := bootRoot(t)
	if err := rootfs.TransformForBoot(root, nil); err != nil {
		t.Fatal(err)
	}
	usr := root.Lookup("usr")
	for _, name := range rootfs.BootEmptyDirs {
		d := root.Lookup(name)
		if len(d.Children) != 0 || d.MtimeSec != usr.MtimeSec || d.MtimeNsec != usr.MtimeNsec {
			t.Errorf("/%s: %d children, mtime %d.%d; want empty with /usr's mtime", name, len(d.Children), d.MtimeSec, d.MtimeNsec)
		}
	}
	err := root.Walk(func(p string, n *tree.Node) error {
		if _, ok := n.GetXattr(rootfs.SELinuxXattr); ok && n.LinkTo == nil {
			t.Errorf("%s keeps its SELinux label", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := usr.Lookup("bin").GetXattr("security.capability"); !ok {
		t.Error("security.capability was dropped")
	}
	link := root.Lookup("etc").Lookup("link")
	if link.LinkTo != nil || string(link.Content) != "held" {
		t.Errorf("/etc/link lost the inode it shared with /sysroot/held: %+v", link)
	}
}

// A root without /boot or /sysroot, or with an SELinux policy, is refused
// and left as it was.
func TestTransformForBootRefuses(t *testing.T) {
	policy := "# comment\nSELINUX=enforcing\n SELINUXTYPE = targeted \n"
	tests := []struct {
		name string
		edit func(root *tree.Node)
		read func(string, *tree.Node) ([]byte, error)
		is   error
	}{
		{"no /boot", func(root *tree.Node) { root.RemoveChild("boot") }, nil, rootfs.ErrNotDir},
		{"no /usr", func(root *tree.Node) { root.RemoveChild("usr") }, nil, rootfs.ErrNoUsr},
		{"inline policy", func(root *tree.Node) { addPolicy(t, root, policy, true) }, nil, rootfs.ErrSELinuxPolicy},
		{"external policy", func(root *tree.Node) { addPolicy(t, root, policy, false) },
			func(p string, n *tree.Node) ([]byte, error) {
				if p != "/etc/selinux/config" {
					t.Errorf("read %s", p)
				}
				return []byte(policy), nil
			}, rootfs.ErrSELinuxPolicy},
		{"unreadable policy", func(root *tree.Node) { addPolicy(t, root, policy, false) }, nil, nil},
	}
	for _, tt := range tests {
		root := bootRoot(t)
		tt.edit(root)
		before := dumpOf(t, root)
		err := rootfs.TransformForBoot(root, tt.read)
		if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.is)
		}
		if after := dumpOf(t, root); after != before {
			t.Errorf("%s: the tree changed although the transformation failed", tt.name)
		}
	}
	// A config without SELINUXTYPE is no policy: labels are dropped.
	root := bootRoot(t)
	addPolicy(t, root, "SELINUX=disabled\n", true)
	if err := rootfs.TransformForBoot(root, nil); err != nil {
		t.Errorf("config without SELINUXTYPE: %v", err)
	}
}

func addPolicy(t *testing.T, root *tree.Node, text string, inline bool) {
	sel := add(t, root.Lookup("etc"), "selinux", tree.ModeDir|0o755, 1)
	cfg := add(t, sel, "config", tree.ModeRegular|0o644, 1)
	cfg.Size = uint64(len(text))
	if inline {
		cfg.SetContent([]byte(text))
	} else {
		cfg.Payload = "ab/cdef"
	}
}
