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

// demo is one run of the demo: its work directory, what it reports to,
// and what each phase makes for the next.
type demo struct {
	out     io.Writer
	dir     string
	root    bool // running as root: the sample has devices, and is mounted
	src     string
	tr      *tree.Node
	objects string
	img     string
	digest  []byte
}

func (d *demo) step(format string, a ...any) { fmt.Fprintf(d.out, "  "+format+"\n", a...) }

func runDemo(out io.Writer, dir string, keep bool) error {
	start := time.Now()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "gocfs-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	fmt.Fprintf(out, "gocfs demo in %s\n", dir)
	d := &demo{out: out, dir: dir, root: os.Geteuid() == 0}
	for _, phase := range []func() error{d.makeSource, d.build, d.checkReproducible, d.verify} {
		if err := phase(); err != nil {
			return err
		}
	}
	if !d.root {
		d.step("not mounting: mounting EROFS and overlayfs needs root")
		fmt.Fprintf(out, "demo passed (without the mount) in %.1fs\n", time.Since(start).Seconds())
		return nil
	}
	if err := d.mountAndCompare(); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo passed in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// makeSource creates the sample tree and scans it.
func (d *demo) makeSource() error {
	opts := sample.Full
	if !d.root {
		opts = sample.Options{}
	}
	d.src = filepath.Join(d.dir, "source")
	if err := sample.Create(d.src, opts); err != nil {
		return err
	}
	var err error
	if d.tr, err = scan.Dir(d.src, scan.Options{PreserveHardlinks: true}); err != nil {
		return err
	}
	var files, inline, stored int
	d.tr.Walk(func(_ string, n *tree.Node) error {
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
	d.step("source: %d entries (%d files inline in the image, %d in the object store)", files, inline, stored)
	return nil
}

// build stores the files and writes the image.
func (d *demo) build() error {
	d.objects = filepath.Join(d.dir, "objects")
	st, err := store.Open(d.objects, store.Options{Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.ImportTree(context.Background(), d.tr, d.src, 0); err != nil {
		return err
	}
	d.img = filepath.Join(d.dir, "demo.cfs")
	if d.digest, err = image.WriteFile(d.img, d.tr, image.DefaultOptions); err != nil {
		return err
	}
	fi, _ := os.Stat(d.img)
	d.step("image: %s, %d bytes", d.img, fi.Size())
	fmt.Fprintf(d.out, "digest: %s\n", fsverity.Hex(d.digest))
	return nil
}

// checkReproducible builds the image again: same input, same bytes.
func (d *demo) checkReproducible() error {
	again, err := image.Digest(d.tr, image.DefaultOptions)
	if err != nil {
		return err
	}
	if fsverity.Hex(again) != fsverity.Hex(d.digest) {
		return errors.New("building the same tree twice gave different images")
	}
	d.step("reproducible: a second build has the same digest")
	return nil
}

// verify runs the verifier on the image and the object store.
func (d *demo) verify() error {
	rep, err := verify.File(d.img, verify.Options{Basedir: d.objects, Digest: d.digest})
	if err != nil {
		return err
	}
	if !rep.OK {
		for _, p := range rep.Problems {
			fmt.Fprintf(d.out, "  PROBLEM %v\n", p)
		}
		return errors.New("the verifier found problems in the demo image")
	}
	d.step("verified: image well-formed, every object present with its digest")
	return nil
}

// mountAndCompare mounts the image with its digest checked, compares the
// mounted tree with the source, and unmounts.
func (d *demo) mountAndCompare() error {
	mnt := filepath.Join(d.dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	mo := mount.Options{
		Basedirs: []string{d.objects}, ExpectedDigest: fsverity.Hex(d.digest), Verity: mount.VerityTry,
		Notice: func(msg string) { d.step("note: %s", msg) },
	}
	if err := mount.Mount(d.img, mnt, mo); err != nil {
		return fmt.Errorf("mounting: %w", err)
	}
	mounted := true
	defer func() {
		if mounted {
			mount.Unmount(mnt)
		}
	}()
	d.step("mounted at %s (EROFS + overlayfs, image digest checked)", mnt)
	diffs, err := treecmp.Diff(d.src, mnt, treecmp.Options{Hardlinks: true, ComposefsWhiteouts: true, IgnoreRoot: true})
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		for _, x := range diffs {
			fmt.Fprintf(d.out, "  DIFFERENCE %s\n", x)
		}
		return fmt.Errorf("the mounted tree differs from the source in %d ways", len(diffs))
	}
	d.step("compared: the mounted tree equals the source (content, modes, owners, mtimes, xattrs, links, devices)")
	mounted = false
	if err := mount.Unmount(mnt); err != nil {
		return err
	}
	d.step("unmounted")
	return nil
}
