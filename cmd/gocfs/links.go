package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
)

func init() { registerCommand(newInstallLinksCmd) }

// linkFlags are install-links's options.
type linkFlags struct {
	helperDir, target, man string
	force                  bool
}

func newInstallLinksCmd() *cobra.Command {
	var lf linkFlags
	cmd := &cobra.Command{
		Use:   "install-links DIR",
		Short: "Install the upstream tool names (mkcomposefs, mount.composefs, …) as links to gocfs",
		Long: `Create symlinks named after the upstream composefs tools in DIR (mkcomposefs,
composefs-info, composefs-dump, composefs-fuse, mount.composefs and
composefs-rs's composefs-setup-root), each pointing at this gocfs binary,
which then behaves as that tool. A
mount.composefs link is also placed in the mount helper directory (/sbin by
default), where "mount -t composefs" looks for it. With --man, the man pages
of gocfs and of those tools are written into that man tree (man1, man8).

--target names the binary the links point at, for installing into a staging
directory (make install DESTDIR=…): the links then point at where the binary
will be, not at this one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return installLinks(cmd, &lf, args[0]) },
	}
	cmd.Flags().StringVar(&lf.helperDir, "mount-helper-dir", "/sbin", `also link mount.composefs here ("" for nowhere)`)
	cmd.Flags().BoolVar(&lf.force, "force", false, "replace existing files that are not links to gocfs")
	cmd.Flags().StringVar(&lf.target, "target", "", "make the links point at this `PATH` (default: this gocfs binary)")
	cmd.Flags().StringVar(&lf.man, "man", "", "also write the man pages into this man tree `DIR` (e.g. /usr/local/share/man)")
	return cmd
}

// installLinks installs the links (and the man pages) as lf says.
func installLinks(cmd *cobra.Command, lf *linkFlags, dir string) error {
	self := lf.target
	if self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the gocfs binary: %w", err)
		}
		if self, err = filepath.EvalSymlinks(exe); err != nil {
			return fmt.Errorf("finding the gocfs binary: %w", err)
		}
	}
	names := make([]string, 0, len(personalities))
	for n := range personalities {
		names = append(names, n)
	}
	sort.Strings(names)
	links := make(map[string]bool)
	for _, n := range names {
		links[filepath.Join(dir, n)] = true
	}
	if lf.helperDir != "" {
		links[filepath.Join(lf.helperDir, "mount.composefs")] = true
	}
	paths := make([]string, 0, len(links))
	for p := range links {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := installLink(self, p, lf.force); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s\n", p, self)
	}
	if lf.man == "" {
		return nil
	}
	pages, err := writeManPages(cmd.Root(), lf.man)
	for _, p := range pages {
		fmt.Fprintln(cmd.OutOrStdout(), p)
	}
	return err
}

// installLink points path at target, atomically replacing an existing link
// (or, with force, any file).
func installLink(target, path string, force bool) error {
	if fi, err := os.Lstat(path); err == nil {
		cur, _ := os.Readlink(path)
		if fi.Mode()&os.ModeSymlink == 0 || !sameFile(cur, target, path) {
			if !force {
				return fmt.Errorf("%s exists and is not a link to gocfs (use --force to replace it)", path)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp := path + ".gocfs-tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return nil
}

// sameFile reports whether link (read from path) resolves to target or to
// any gocfs binary.
func sameFile(link, target, path string) bool {
	if link == "" {
		return false
	}
	if link == target {
		return true
	}
	if !filepath.IsAbs(link) {
		link = filepath.Join(filepath.Dir(path), link)
	}
	r, err := filepath.EvalSymlinks(link)
	return err == nil && (r == target || filepath.Base(r) == "gocfs")
}
