package main

// The repository commands that make, read and print images: cfsctl's
// create-image, compute-id, create-dumpfile, import-image, image-objects,
// dump-files and cat.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

// fsReadFlags are cfsctl's options for reading a root file system from a
// directory (create-image, compute-id, create-dumpfile), with gocfs's
// scan options.
type fsReadFlags struct {
	bootable, noPropagate bool
	xattrs                string
	scan                  scan.Options
}

const fsReadHelp = `
Unless --no-propagate-usr-to-root is given, PATH is taken for a container's
root file system, as cfsctl takes it: the root directory gets /usr's mode,
owner, mtime and xattrs, /run is emptied (with /usr's mtime), and only the
xattrs --xattrs allows are kept (security.capability; with keep-user-xattrs
user.* too). PATH must then have a /usr directory. With
--no-propagate-usr-to-root the tree is the directory as it is, as
mkcomposefs reads it.`

func (f *fsReadFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.bootable, "bootable", false, "transform the file system for boot: empty /boot and /sysroot, drop SELinux labels (an image with an SELinux policy is refused)")
	fl.BoolVar(&f.noPropagate, "no-propagate-usr-to-root", false, "take the directory as it is: no copy of /usr's metadata to the root, /run kept, every xattr kept")
	fl.StringVar(&f.xattrs, "xattrs", rootfs.AllowlistOnly.String(), "which xattrs to keep: allowlist-only or keep-user-xattrs (no effect with --no-propagate-usr-to-root)")
	fl.BoolVar(&f.scan.UseEpoch, "use-epoch", false, "make all mtimes zero (gocfs)")
	fl.BoolVar(&f.scan.SkipDevices, "skip-devices", false, "don't store device nodes (gocfs)")
	fl.BoolVar(&f.scan.SkipXattrs, "skip-xattrs", false, "don't store file xattrs (gocfs)")
	fl.BoolVar(&f.scan.UserXattrsOnly, "user-xattrs", false, "only store user.* xattrs (gocfs)")
	fl.BoolVar(&f.scan.PreserveHardlinks, "preserve-hardlinks", false, "keep hard links between files (gocfs; composefs-rs always does)")
	cmd.Long += "\n" + fsReadHelp
}

// edit returns the change the flags make to a tree read from the
// directory src (nil for none).
func (f *fsReadFlags) edit(src string) (func(*tree.Node) error, error) {
	filter, err := rootfs.ParseXattrFilter(f.xattrs)
	if err != nil {
		return nil, fmt.Errorf("--xattrs: %w", err)
	}
	var steps []func(*tree.Node) error
	if !f.noPropagate {
		steps = append(steps, func(root *tree.Node) error { return rootfs.TransformForOCI(root, filter) })
	}
	if f.bootable {
		steps = append(steps, func(root *tree.Node) error { return bootTransform(root, src) })
	}
	if len(steps) == 0 {
		return nil, nil
	}
	return func(root *tree.Node) error {
		for _, step := range steps {
			if err := step(root); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// readRoot reads the directory src as compute-id and create-dumpfile do:
// digests made with the algorithm the global options select, the edit of
// the flags applied.
func (f *fsReadFlags) readRoot(cmd *cobra.Command, rf *repoFlags, src string) (*tree.Node, fsverity.Algorithm, error) {
	edit, err := f.edit(src)
	if err != nil {
		return nil, 0, err
	}
	alg, err := rf.algorithmNoRepo()
	if err != nil {
		return nil, 0, err
	}
	sopts := f.scan
	sopts.Threads = rf.threads
	ctx, cancel := interruptible()
	defer cancel()
	root, err := repo.ReadDir(ctx, src, alg, sopts)
	if err != nil {
		return nil, 0, err
	}
	if edit != nil {
		if err := edit(root); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", src, err)
		}
	}
	return root, alg, nil
}

func newRepoCreateImageCmd(rf *repoFlags) *cobra.Command {
	var f fsReadFlags
	cmd := &cobra.Command{
		Use:   "create-image [flags] PATH [IMAGE_NAME]",
		Short: "Store a root file system and its image, and print the image's object ID",
		Long: `Read the root file system at PATH, store each of its files as an object, then
its image (linked as images/DIGEST and, with IMAGE_NAME, as
images/refs/IMAGE_NAME), and print the image's object ID (ALGORITHM:DIGEST,
as cfsctl prints it). PATH may also be a composefs-dump(5) file ("-" for
standard input), whose files' objects must be in the repository already
(gocfs); it is taken as it is.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return runCreateImage(cmd, rf, &f, args) },
	}
	f.add(cmd)
	return cmd
}

func runCreateImage(cmd *cobra.Command, rf *repoFlags, f *fsReadFlags, args []string) error {
	edit, err := f.edit(args[0])
	if err != nil {
		return err
	}
	if f.bootable && !isDir(args[0]) {
		return errors.New("--bootable: the source must be a directory")
	}
	iopts, err := rf.imageOptions()
	if err != nil {
		return err
	}
	r, err := rf.open(cmd)
	if err != nil {
		return err
	}
	defer r.Close()
	name := ""
	if len(args) == 2 {
		name = refName(args[1])
	}
	ctx, cancel := interruptible()
	defer cancel()
	opts := repo.CreateOptions{Scan: f.scan}
	if rf.erofsVersion != "" {
		opts.Image = &iopts // else the repository's (meta.json), as cfsctl
	}
	var res *repo.ImportResult
	if src := args[0]; isDir(src) {
		res, err = r.CreateImageEdited(ctx, src, name, opts, edit)
	} else {
		var in io.ReadCloser = os.Stdin
		if src != "-" {
			if in, err = os.Open(src); err != nil {
				return err
			}
		}
		res, err = r.CreateImageFromDump(ctx, in, name, opts)
		in.Close()
	}
	if err != nil {
		return err
	}
	return rf.output(cmd, res, func(w io.Writer) { fmt.Fprintln(w, digestID(r.Algorithm(), res.Image)) })
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func newRepoComputeIDCmd(rf *repoFlags) *cobra.Command {
	var f fsReadFlags
	cmd := &cobra.Command{
		Use:   "compute-id [flags] PATH",
		Short: "Print the image digest create-image would give the root file system at PATH",
		Long: `Read the root file system at PATH and print, in hex, the fs-verity digest of
its image: what create-image would print (without the algorithm) and name the
image by. Nothing is stored. The algorithm is --hash's, else the
repository's when there is one (not with --no-repo), else SHA-512, as cfsctl
decides; the EROFS format is --erofs-version's, else the repository's
(meta.json, as create-image makes images), else 1. With --hash sha256,
--no-propagate-usr-to-root and --erofs-version 0, it is "mkcomposefs
--print-digest-only PATH"; with --erofs-version 1, "mkcomposefs
--min-version=1 --print-digest-only PATH".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iopts, err := rf.imageOptionsNoRepo()
			if err != nil {
				return err
			}
			root, alg, err := f.readRoot(cmd, rf, args[0])
			if err != nil {
				return err
			}
			id, err := repo.ImageID(root, alg, iopts)
			if err != nil {
				return err
			}
			out := struct {
				ID string `json:"id"`
			}{id.Hex()}
			return rf.output(cmd, out, func(w io.Writer) { fmt.Fprintln(w, out.ID) })
		},
	}
	f.add(cmd)
	return cmd
}

func newRepoCreateDumpfileCmd(rf *repoFlags) *cobra.Command {
	var f fsReadFlags
	cmd := &cobra.Command{
		Use:   "create-dumpfile [flags] PATH",
		Short: "Print the composefs-dump(5) of the root file system at PATH",
		Long: `Read the root file system at PATH and print, in composefs-dump(5) format on
standard output, the image create-image would make of it (whose digest
compute-id prints), as composefs-info dump prints an image: with the
digests and object paths of the algorithm compute-id uses. Nothing is
stored.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iopts, err := rf.imageOptionsNoRepo()
			if err != nil {
				return err
			}
			root, _, err := f.readRoot(cmd, rf, args[0])
			if err != nil {
				return err
			}
			var img bytes.Buffer
			if err := image.Write(&img, root, iopts); err != nil {
				return err
			}
			back, err := image.Read(bytes.NewReader(img.Bytes()), int64(img.Len()), image.ReadOptions{})
			if err != nil {
				return err
			}
			return dump.NewWriter(cmd.OutOrStdout()).WriteTree(back)
		},
	}
	f.add(cmd)
	return cmd
}

func newRepoImportImageCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import-image REFERENCE < IMAGE",
		Short: "Store a composefs image read from standard input as reference REFERENCE",
		Long: `Read a composefs image from standard input, check that it is one and that
the repository has every object it refers to (listing those it lacks), then
store it, point reference REFERENCE at it and print its object ID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return errors.New("import-image reads the image from standard input, which is a terminal")
			}
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				res, err := r.ImportImage(ctx, in, refName(args[0]))
				if err != nil {
					return err
				}
				return rf.output(cmd, res, func(w io.Writer) { fmt.Fprintln(w, digestID(r.Algorithm(), res.Image)) })
			})
		},
	}
}

func newRepoImageObjectsCmd(rf *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image-objects NAME",
		Short: "List the object IDs an image refers to",
		Long: `Print the ID (ALGORITHM:DIGEST) of every object the image NAME refers to, one
per line, sorted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			objs, err := r.ImageObjects(args[0])
			if err != nil {
				return err
			}
			out := struct {
				ObjectIDs []string `json:"object_ids"`
			}{make([]string, len(objs))}
			for i, o := range objs {
				out.ObjectIDs[i] = digestID(r.Algorithm(), o)
			}
			return rf.output(cmd, out, func(w io.Writer) {
				for _, o := range out.ObjectIDs {
					fmt.Fprintln(w, o)
				}
			})
		},
	}
	completeImages(cmd, rf, 1)
	return cmd
}

func newRepoDumpFilesCmd(rf *repoFlags) *cobra.Command {
	var backing bool
	cmd := &cobra.Command{
		Use:   "dump-files IMAGE_NAME [FILES]...",
		Short: "Print the entries of files of an image, in composefs-dump(5) format",
		Long: `Print the composefs-dump(5) entry of each of FILES (paths in the image) as
composefs-info dump prints it; a directory is printed with everything below
it. With --backing-path-only, print for each file its path and "inline" (its
content is in the image) or the object holding its content, relative to the
object store; a directory is then an error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			root, _, err := r.ReadImage(args[0])
			if err != nil {
				return err
			}
			return dumpFiles(cmd.OutOrStdout(), root, args[1:], backing)
		},
	}
	cmd.Flags().BoolVar(&backing, "backing-path-only", false, `print each file's backing: "inline" or its object's path`)
	completeImages(cmd, rf, 1)
	return cmd
}

// dumpFiles prints files of the image root as dump-files does.
func dumpFiles(out io.Writer, root *tree.Node, files []string, backing bool) error {
	w := dump.NewWriter(out)
	var b []byte
	for _, f := range files {
		p := path.Clean("/" + f)
		n := root.LookupPath(p)
		if n == nil {
			return fmt.Errorf("%s not found", f)
		}
		inode, err := n.Target()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		switch {
		case backing && inode.IsDir():
			return fmt.Errorf("%s is a directory", f)
		case backing && inode.IsRegular() && inode.Content == nil && inode.Payload != "":
			fmt.Fprintf(out, "%s %s\n", p, inode.Payload)
		case backing:
			fmt.Fprintf(out, "%s inline\n", p)
		case inode.IsDir():
			if err := w.WriteTree(n); err != nil {
				return err
			}
		default:
			b = dump.AppendEntry(b[:0], n, p)
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

func newRepoCatCmd(rf *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cat NAME",
		Short: "Write the content of a split stream (or an object) to standard output",
		Long: `Rebuild the split stream NAME (its content identifier, streams/NAME, or
refs/NAME for a named one) and write it to standard output: an OCI layer's
tar archive, for instance, byte for byte. Every object it is made of is
checked against its digest before anything is written. NAME may also be an
object's ID (ALGORITHM:DIGEST, or the digest alone): its content is written,
checked likewise (gocfs).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				return r.Cat(ctx, strings.TrimPrefix(args[0], "streams/"), cmd.OutOrStdout())
			})
		},
	}
	completeStreams(cmd, rf)
	return cmd
}
