package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/sample"
	"github.com/gocfs/gocfs/internal/treecmp"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
	"github.com/gocfs/gocfs/verify"
)

func init() { registerCommand(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build, verify, mount and check an image of a built-in sample tree",
		Long: `Build a composefs image and its object store from a built-in sample tree
(files of many sizes, symlinks, devices, a whiteout, xattrs, hard links, long
names, deep nesting), print the image's digest, check it with the verifier,
mount it with the digest required (where this kernel and user allow), compare
the mounted tree with the source file by file, and unmount.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.OutOrStdout(), dir, keep)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work in this (new or empty) directory instead of a temporary one")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory")
	return cmd
}

func runDemo(out io.Writer, dir string, keep bool) error {
	start := time.Now()
	if dir == "" {
		d, err := os.MkdirTemp("", "gocfs-demo-")
		if err != nil {
			return err
		}
		dir = d
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	step := func(format string, a ...any) { fmt.Fprintf(out, "  "+format+"\n", a...) }
	fmt.Fprintf(out, "gocfs demo in %s\n", dir)

	root := os.Geteuid() == 0
	opts := sample.Full
	if !root {
		opts = sample.Options{}
	}
	src := filepath.Join(dir, "source")
	if err := sample.Create(src, opts); err != nil {
		return err
	}
	tr, err := scan.Dir(src, scan.Options{PreserveHardlinks: true})
	if err != nil {
		return err
	}
	var files, inline, stored int
	tr.Walk(func(_ string, n *tree.Node) error {
		files++
		if n.IsRegular() && n.LinkTo == nil {
			if n.Content != nil {
				inline++
			} else if n.Payload != "" {
				stored++
			}
		}
		return nil
	})
	step("source: %d entries (%d files inline in the image, %d in the object store)", files, inline, stored)

	objects := filepath.Join(dir, "objects")
	st, err := store.Open(objects, store.Options{Create: true})
	if err != nil {
		return err
	}
	if err := st.ImportTree(context.Background(), tr, src, 0); err != nil {
		return err
	}
	img := filepath.Join(dir, "demo.cfs")
	digest, err := image.WriteFile(img, tr, image.DefaultOptions)
	if err != nil {
		return err
	}
	fi, _ := os.Stat(img)
	step("image: %s, %d bytes", img, fi.Size())
	fmt.Fprintf(out, "digest: %s\n", fsverity.Hex(digest))

	// Same input, same bytes: build it again and compare digests.
	again, err := image.Digest(tr, image.DefaultOptions)
	if err != nil {
		return err
	}
	if fsverity.Hex(again) != fsverity.Hex(digest) {
		return errors.New("building the same tree twice gave different images")
	}
	step("reproducible: a second build has the same digest")

	rep, err := verify.File(img, verify.Options{Basedir: objects, Digest: digest})
	if err != nil {
		return err
	}
	if !rep.OK {
		for _, p := range rep.Problems {
			fmt.Fprintf(out, "  PROBLEM %v\n", p)
		}
		return errors.New("the verifier found problems in the demo image")
	}
	step("verified: image well-formed, every object present with its digest")

	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if !root {
		step("not mounting: mounting EROFS and overlayfs needs root")
		fmt.Fprintf(out, "demo passed (without the mount) in %.1fs\n", time.Since(start).Seconds())
		return nil
	}
	mo := mount.Options{
		Basedirs: []string{objects}, ExpectedDigest: fsverity.Hex(digest), Verity: mount.VerityTry,
		Notice: func(msg string) { step("note: %s", msg) },
	}
	if err := mount.Mount(img, mnt, mo); err != nil {
		return fmt.Errorf("mounting: %w", err)
	}
	mounted := true
	defer func() {
		if mounted {
			mount.Unmount(mnt)
		}
	}()
	step("mounted at %s (EROFS + overlayfs, image digest checked)", mnt)
	diffs, err := treecmp.Diff(src, mnt, treecmp.Options{Hardlinks: true, ComposefsWhiteouts: true, IgnoreRoot: true})
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintf(out, "  DIFFERENCE %s\n", d)
		}
		return fmt.Errorf("the mounted tree differs from the source in %d ways", len(diffs))
	}
	step("compared: the mounted tree equals the source (content, modes, owners, mtimes, xattrs, links, devices)")
	mounted = false
	if err := mount.Unmount(mnt); err != nil {
		return err
	}
	step("unmounted")
	fmt.Fprintf(out, "demo passed in %.1fs\n", time.Since(start).Seconds())
	return nil
}
