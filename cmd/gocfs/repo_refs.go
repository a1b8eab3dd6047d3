package main

// The repository commands that list and name images: cfsctl's images, and
// gocfs's tag and untag.

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/repo"
)

// imageEntry is one line of "images": cfsctl's JSON shape.
type imageEntry struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

func newRepoImagesCmd(rf *repoFlags) *cobra.Command {
	var noTrunc, all bool
	cmd := &cobra.Command{
		Use:     "images",
		Aliases: []string{"list-images"},
		Short:   "List the named image references",
		Long: `List the image references (NAME) and the digests of the images they name, as
cfsctl does: a table with the digests shortened to 12 digits (--no-trunc:
whole), "No images found" when there is none, or with --json
{"images": [{"name": NAME, "digest": DIGEST}, …]}. With --all (gocfs), the
images no reference names are listed too, with an empty name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			entries, err := imageEntries(r, all)
			if err != nil {
				return err
			}
			out := struct {
				Images []imageEntry `json:"images"`
			}{entries}
			return rf.output(cmd, out, func(w io.Writer) { printImages(w, entries, noTrunc) })
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "show whole digests")
	cmd.Flags().BoolVar(&all, "all", false, "also list the images no reference names (gocfs)")
	return cmd
}

// imageEntries lists the references, sorted by name, and with all the
// images without one.
func imageEntries(r *repo.Repo, all bool) ([]imageEntry, error) {
	refs, err := r.Refs()
	if err != nil {
		return nil, err
	}
	entries := make([]imageEntry, 0, len(refs))
	named := make(map[string]bool)
	for _, ref := range refs {
		entries = append(entries, imageEntry{Name: ref.Name, Digest: ref.Image})
		named[ref.Image] = true
	}
	if all {
		images, err := r.Images()
		if err != nil {
			return nil, err
		}
		for _, im := range images {
			if !named[im.Digest] {
				entries = append(entries, imageEntry{Digest: im.Digest})
			}
		}
	}
	return entries, nil
}

func printImages(w io.Writer, entries []imageEntry, noTrunc bool) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "No images found")
		return
	}
	rows := make([][]string, len(entries))
	for i, e := range entries {
		d := e.Digest
		if !noTrunc && len(d) > 12 {
			d = d[:12]
		}
		rows[i] = []string{e.Name, d}
	}
	fmt.Fprint(w, utf8Table([]string{"NAME", "DIGEST"}, rows))
}

func newRepoTagCmd(rf *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag NAME IMAGE",
		Short: "Point reference NAME at an image (gocfs)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			name := refName(args[0])
			if err := r.Tag(name, args[1]); err != nil {
				return err
			}
			d, err := r.ResolveRef(name)
			if err != nil {
				return err
			}
			ref := repo.Ref{Name: name, Image: d.Hex()}
			return rf.output(cmd, ref, func(io.Writer) {})
		},
	}
	completeImages(cmd, rf, 2)
	return cmd
}

func newRepoUntagCmd(rf *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "untag NAME",
		Short: "Remove reference NAME; gc then removes what only it kept (gocfs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			return r.Untag(refName(args[0]))
		},
	}
	completeImages(cmd, rf, 1)
	return cmd
}
