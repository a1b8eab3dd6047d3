package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/internal/atomicfile"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// ErrNoKernel reports an image without a kernel to boot, and
// ErrUnsupportedEntry one whose boot entries gocfs does not write.
var (
	ErrNoKernel         = errors.New("boot: the image has no kernel (/usr/lib/modules/VERSION/vmlinuz)")
	ErrUnsupportedEntry = errors.New("boot: the image's /boot has boot loader entries or UKIs, which gocfs does not install")
)

// maxTransformRead bounds what the boot transformation reads of a file.
const maxTransformRead = 1 << 20

// Kernel is a kernel an image carries in /usr/lib/modules/VERSION.
type Kernel struct {
	Version            string
	Vmlinuz, Initramfs *tree.Node
}

// FindKernels returns the kernels of an image's tree, by version
// (composefs-boot's UsrLibModulesVmlinuz::load_all): every directory of
// /usr/lib/modules with a regular file vmlinuz; Initramfs is nil when it
// has no initramfs.img.
func FindKernels(root *tree.Node) []Kernel {
	var out []Kernel
	mods := lookupDir(root, "usr", "lib", "modules")
	if mods == nil {
		return nil
	}
	for _, d := range mods.Children {
		if !d.IsDir() {
			continue
		}
		k := Kernel{Version: d.Name, Vmlinuz: regular(d.Lookup("vmlinuz")), Initramfs: regular(d.Lookup("initramfs.img"))}
		if k.Vmlinuz != nil {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

func lookupDir(n *tree.Node, names ...string) *tree.Node {
	for _, name := range names {
		if n = n.Lookup(name); n == nil || !n.IsDir() {
			return nil
		}
	}
	return n
}

// regular returns the inode of n when it is a regular file.
func regular(n *tree.Node) *tree.Node {
	if n == nil {
		return nil
	}
	t, err := n.Target()
	if err != nil || !t.IsRegular() {
		return nil
	}
	return t
}

// hasBootEntries says whether /boot holds Type 1 entries or UKIs, which
// composefs-boot installs before any kernel of /usr/lib/modules.
func hasBootEntries(root *tree.Node) bool {
	for _, dir := range [][]string{{"boot", "loader", "entries"}, {"boot", "EFI", "Linux"}} {
		if d := lookupDir(root, dir...); d != nil && len(d.Children) > 0 {
			return true
		}
	}
	return false
}

// PrepareOptions say what PrepareBoot does besides storing the image.
type PrepareOptions struct {
	// BootDir, when not empty, is the boot partition where a Boot Loader
	// Specification Type 1 entry is written for the image's kernel.
	BootDir string
	// EntryID names the entry (BootDir/loader/entries/ID.conf, and the
	// directory BootDir/ID with the kernel and initramfs); the kernel's
	// version when empty.
	EntryID string
	// Cmdline are kernel arguments added after the karg.
	Cmdline []string
	// Insecure marks the karg insecure ("?").
	Insecure bool
}

// Prepared is what PrepareBoot did.
type Prepared struct {
	Karg     Karg   `json:"-"`
	KargText string `json:"karg"`
	Image    string `json:"image"`
	State    string `json:"state"`
	Entry    string `json:"entry,omitempty"`
}

// PrepareBoot makes root, an image's tree as stored (an OCI image's
// merged layers), bootable as composefs-rs's oci prepare-boot does: the
// boot transformation applied (rootfs.TransformForBoot), the image stored,
// its state directory made beside the repository
// (../state/deploy/DIGEST/{var,etc/upper,etc/work}), and, with BootDir, a
// Type 1 entry for its kernel written. root is changed.
func PrepareBoot(ctx context.Context, r *repo.Repo, root *tree.Node, o PrepareOptions) (*Prepared, error) {
	var kernel Kernel
	if o.BootDir != "" {
		if hasBootEntries(root) {
			return nil, ErrUnsupportedEntry
		}
		ks := FindKernels(root)
		if len(ks) == 0 {
			return nil, ErrNoKernel
		}
		kernel = ks[0]
		if kernel.Initramfs == nil {
			return nil, fmt.Errorf("%w: kernel %s has no initramfs.img in /usr/lib/modules/%s", ErrNoKernel, kernel.Version, kernel.Version)
		}
	}
	read := func(_ string, n *tree.Node) ([]byte, error) {
		rc, err := openContent(r, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, maxTransformRead))
	}
	if err := rootfs.TransformForBoot(root, read); err != nil {
		return nil, err
	}
	var p Prepared
	err := r.Update(ctx, func(tx *repo.Tx) error {
		res, err := tx.CommitTree(root, repo.CreateOptions{})
		if err != nil {
			return err
		}
		p.Karg = NewKarg(res.Digest, r.Meta().ErofsVersion(), o.Insecure)
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.KargText, p.Image = p.Karg.String(), p.Karg.Digest.Hex()
	p.State = filepath.Join(filepath.Dir(filepath.Clean(r.Dir())), StateDir, p.Image)
	for _, sub := range []string{"var", "etc/upper", "etc/work"} {
		if err := os.MkdirAll(filepath.Join(p.State, sub), 0o755); err != nil {
			return nil, fmt.Errorf("boot: state directory: %w", err)
		}
	}
	if o.BootDir != "" {
		if p.Entry, err = writeType1(r, kernel, p.Karg, o); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// openContent opens a regular file's content: inline, or its object.
func openContent(r *repo.Repo, n *tree.Node) (io.ReadCloser, error) {
	if uint64(len(n.Content)) == n.Size {
		return io.NopCloser(strings.NewReader(string(n.Content))), nil
	}
	return r.Store().OpenPath(n.Payload)
}

// writeType1 installs the kernel and initramfs as BootDir/ID/vmlinuz and
// BootDir/ID/initramfs.img and writes BootDir/loader/entries/ID.conf as
// composefs-boot's into_type1 and write_t1_simple do, and returns the
// entry's path.
func writeType1(r *repo.Repo, k Kernel, karg Karg, o PrepareOptions) (string, error) {
	id := o.EntryID
	if id == "" {
		id = k.Version
	}
	if err := tree.CheckName(id); err != nil || strings.HasPrefix(id, ".") {
		return "", fmt.Errorf("boot: entry ID %q is not a plain file name", id)
	}
	for name, n := range map[string]*tree.Node{"vmlinuz": k.Vmlinuz, "initramfs.img": k.Initramfs} {
		if err := copyContent(r, n, filepath.Join(o.BootDir, id, name)); err != nil {
			return "", err
		}
	}
	lines := []string{"# File created by composefs", "title todoOS", "version 0-todo",
		"linux /" + id + "/vmlinuz", "initrd /" + id + "/initramfs.img"}
	for _, arg := range append([]string{karg.String()}, o.Cmdline...) {
		lines = addCmdline(lines, arg)
	}
	conf := filepath.Join(o.BootDir, "loader", "entries", id+".conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		return "", fmt.Errorf("boot: %w", err)
	}
	text := strings.Join(lines, "\n") + "\n"
	err := atomicfile.Write(conf, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, text); return err })
	return conf, err
}

// copyContent writes a file's content to path (atomically).
func copyContent(r *repo.Repo, n *tree.Node, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	rc, err := openContent(r, n)
	if err != nil {
		return fmt.Errorf("boot: %s: %w", n.Path(), err)
	}
	defer rc.Close()
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { _, err := io.Copy(w, rc); return err })
}

// addCmdline adds a kernel argument to a Type 1 entry's options line,
// replacing an argument with the same key ("key=" or the whole word), as
// composefs-boot's BootLoaderEntryFile::add_cmdline.
func addCmdline(lines []string, arg string) []string {
	key := arg
	if i := strings.IndexByte(arg, '='); i >= 0 {
		key = arg[:i+1]
	}
	for i, line := range lines {
		opts, ok := strings.CutPrefix(line, "options")
		if !ok || (opts != "" && opts[0] != ' ' && opts[0] != '\t') {
			continue
		}
		words := SplitCmdline(opts)
		for j, w := range words {
			if strings.HasPrefix(w, key) {
				words[j] = arg
				lines[i] = "options " + strings.Join(words, " ")
				return lines
			}
		}
		lines[i] = line + " " + arg
		return lines
	}
	return append(lines, "options "+arg)
}
