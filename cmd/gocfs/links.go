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

func newInstallLinksCmd() *cobra.Command {
	var helperDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "install-links DIR",
		Short: "Install the upstream tool names (mkcomposefs, mount.composefs, …) as links to gocfs",
		Long: `Create symlinks named after the upstream composefs tools in DIR, each pointing
at this gocfs binary, which then behaves as that tool. A mount.composefs link
is also placed in the mount helper directory (/sbin by default), where
"mount -t composefs" looks for it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the gocfs binary: %w", err)
			}
			if self, err = filepath.EvalSymlinks(self); err != nil {
				return fmt.Errorf("finding the gocfs binary: %w", err)
			}
			names := make([]string, 0, len(personalities))
			for n := range personalities {
				names = append(names, n)
			}
			sort.Strings(names)
			links := make(map[string]bool)
			for _, n := range names {
				links[filepath.Join(args[0], n)] = true
			}
			if helperDir != "" {
				links[filepath.Join(helperDir, "mount.composefs")] = true
			}
			paths := make([]string, 0, len(links))
			for p := range links {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			for _, p := range paths {
				if err := installLink(self, p, force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s\n", p, self)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&helperDir, "mount-helper-dir", "/sbin", `also link mount.composefs here ("" for nowhere)`)
	cmd.Flags().BoolVar(&force, "force", false, "replace existing files that are not links to gocfs")
	return cmd
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
	if !filepath.IsAbs(link) {
		link = filepath.Join(filepath.Dir(path), link)
	}
	r, err := filepath.EvalSymlinks(link)
	return err == nil && (r == target || filepath.Base(r) == "gocfs")
}
