package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/verify"
)

func init() { registerCommand(newVerifyCmd) }

type verifyFlags struct {
	basedir string
	digest  string
	json    bool
	max     int
}

func newVerifyCmd() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an untrusted composefs image before mounting it",
		Long: `Check the structure of a composefs image the way the kernel will read it:
header, superblock, every inode reachable from the root, directory blocks,
extents, xattrs and the overlayfs redirects and metacopy digests composefs
uses. With --basedir, every object the image refers to must be in that store
with the right size and fs-verity digest; with --digest, the image's own
fs-verity digest must match.

Exits 0 when the image is clean, 1 with the list of every problem found
(path, what, why) otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.OutOrStdout(), args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.basedir, "basedir", "", "object store to check the referenced objects against")
	fl.StringVar(&f.digest, "digest", "", "expected fs-verity (sha256) digest of the image, in hex")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.IntVar(&f.max, "max-problems", 1000, "list at most this many problems")
	return cmd
}

func runVerify(stdout io.Writer, path string, f *verifyFlags) error {
	opts := verify.Options{Basedir: f.basedir, MaxProblems: f.max}
	if f.digest != "" {
		d, err := fsverity.ParseHex(strings.TrimPrefix(f.digest, "sha256:"), fsverity.SHA256)
		if err != nil {
			return exitCode(2, fmt.Errorf("--digest: %w", err))
		}
		opts.Digest = d
	}
	r, err := verify.File(path, opts)
	if err != nil {
		return exitCode(2, err)
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return exitCode(2, err)
		}
	} else {
		for _, p := range r.Problems {
			fmt.Fprintln(stdout, p)
		}
		if r.Omitted > 0 {
			fmt.Fprintf(stdout, "... and %d more problems\n", r.Omitted)
		}
		s := r.Stats
		status := "OK"
		if !r.OK {
			status = fmt.Sprintf("%d problems", len(r.Problems)+r.Omitted)
		}
		fmt.Fprintf(stdout, "%s: %s (%d inodes: %d directories, %d files, %d symlinks, %d others, %d hard links; %d objects",
			path, status, s.Inodes, s.Directories, s.Files, s.Symlinks, s.Others, s.HardLinks, s.Objects)
		if f.basedir != "" {
			fmt.Fprintf(stdout, ", %d checked, %d without digest", s.Checked, s.Unverified)
		}
		fmt.Fprintln(stdout, ")")
	}
	if !r.OK {
		return exitCode(1, nil)
	}
	return nil
}
