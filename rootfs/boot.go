package rootfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/tree"
)

// BootEmptyDirs are the top-level directories TransformForBoot empties:
// /boot (a sealed UKI there carries the image's digest, so cannot be in
// it) and /sysroot (composefs-boot's REQUIRED_TOPLEVEL_TO_EMPTY_DIRS,
// crates/composefs-boot/src/lib.rs).
var BootEmptyDirs = []string{"boot", "sysroot"}

// SELinuxXattr is the SELinux label's xattr.
const SELinuxXattr = "security.selinux"

// ErrSELinuxPolicy reports an image with an SELinux policy, whose files
// composefs-rs labels from the policy's file contexts for boot; gocfs
// does not, and refuses rather than make an image with another digest.
var ErrSELinuxPolicy = errors.New("rootfs: the image has an SELinux policy (/etc/selinux/config names SELINUXTYPE), and gocfs does not label files from a policy")

// TransformForBoot applies composefs-rs's boot transformation
// (transform_for_boot, crates/composefs-boot/src/lib.rs and selabel.rs)
// to a root file system's tree: /boot and /sysroot, which must exist, are
// emptied and get /usr's mtime; then, as composefs-rs does for an image
// without an SELinux policy, every security.selinux xattr is removed. An
// image with a policy is refused ([ErrSELinuxPolicy]). readFile returns
// the content of a regular file of the tree (given its path and node); it
// reads /etc/selinux/config when its content is not inline. Nothing is
// changed when an error is returned.
func TransformForBoot(root *tree.Node, readFile func(path string, n *tree.Node) ([]byte, error)) error {
	usr := root.Lookup("usr")
	if usr == nil || !usr.IsDir() {
		return fmt.Errorf("%w: /boot and /sysroot get its mtime", ErrNoUsr)
	}
	var dirs []*tree.Node
	for _, name := range BootEmptyDirs {
		d := root.Lookup(name)
		if d == nil || !d.IsDir() {
			return fmt.Errorf("%w: a bootable image needs a /%s directory", ErrNotDir, name)
		}
		dirs = append(dirs, d)
	}
	policy, err := selinuxPolicy(root, readFile)
	if err != nil {
		return err
	}
	if policy != "" {
		return fmt.Errorf("%w (SELINUXTYPE=%s)", ErrSELinuxPolicy, policy)
	}
	for _, d := range dirs {
		d.MtimeSec, d.MtimeNsec = usr.MtimeSec, usr.MtimeNsec
		emptyDir(root, d)
	}
	return root.Walk(func(_ string, n *tree.Node) error {
		if n.LinkTo == nil {
			n.RemoveXattr(SELinuxXattr)
		}
		return nil
	})
}

// selinuxPolicy returns SELINUXTYPE of /etc/selinux/config, "" when there
// is none (composefs-boot's parse_config).
func selinuxPolicy(root *tree.Node, readFile func(string, *tree.Node) ([]byte, error)) (string, error) {
	n := root
	for _, name := range []string{"etc", "selinux", "config"} {
		if n = n.Lookup(name); n == nil {
			return "", nil
		}
		t, err := n.Target()
		if err != nil {
			return "", err
		}
		n = t
	}
	if !n.IsRegular() {
		return "", nil
	}
	data := n.Content
	if uint64(len(data)) != n.Size {
		if readFile == nil {
			return "", fmt.Errorf("rootfs: /etc/selinux/config: cannot read its content to look for an SELinux policy")
		}
		var err error
		if data, err = readFile("/etc/selinux/config", n); err != nil {
			return "", fmt.Errorf("rootfs: /etc/selinux/config: %w", err)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.EqualFold(strings.TrimSpace(key), "SELINUXTYPE") {
			return strings.TrimSpace(val), nil
		}
	}
	return "", nil
}
