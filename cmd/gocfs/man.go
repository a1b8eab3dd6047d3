package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { registerCommand(newGenManCmd) }

func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of every command into DIR/man1 and DIR/man8",
		Hidden: true,
		Long: `Write a man page for every gocfs command (gocfs.1, gocfs-repo-mount.1, …) and
for each upstream tool name gocfs answers to (mkcomposefs.1, composefs-fuse.1,
mount.composefs.8, …), made from the commands' own definitions, into the man1
and man8 directories of DIR (DIR is a man tree: /usr/local/share/man).
SOURCE_DATE_EPOCH, when set, dates them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pages, err := writeManPages(cmd.Root(), args[0])
			for _, p := range pages {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return err
		},
	}
}

// manSection is the section of a personality's page: 8 for the mount
// helper, 1 for the others.
func manSection(name string) string {
	if name == "mount.composefs" {
		return "8"
	}
	return "1"
}

// writeManPages writes the pages of root's command tree and of the
// personalities under dir, and returns their paths.
func writeManPages(root *cobra.Command, dir string) ([]string, error) {
	for _, s := range []string{"man1", "man8"} {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			return nil, err
		}
	}
	header := func(section string) *doc.GenManHeader {
		return &doc.GenManHeader{Section: section, Source: "gocfs " + versionString(), Manual: "gocfs manual"}
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	trees := []*cobra.Command{root}
	names := make([]string, 0, len(personalities))
	for n := range personalities {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		trees = append(trees, personalities[n]())
	}
	for _, c := range trees {
		c.DisableAutoGenTag = true
		section := manSection(c.Name())
		if err := doc.GenManTree(c, header(section), filepath.Join(dir, "man"+section)); err != nil {
			return nil, fmt.Errorf("man pages of %s: %w", c.Name(), err)
		}
	}
	return listPages(dir)
}

// listPages lists the pages under dir's man1 and man8.
func listPages(dir string) ([]string, error) {
	var pages []string
	for _, s := range []string{"man1", "man8"} {
		ents, err := os.ReadDir(filepath.Join(dir, s))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			pages = append(pages, filepath.Join(dir, s, e.Name()))
		}
	}
	return pages, nil
}
