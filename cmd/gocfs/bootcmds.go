package main

// The boot commands of cfsctl: compute-karg and oci prepare-boot (and the
// boot transformation of create-image --bootable); setup-root is in
// setuproot.go.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/boot"
	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// maxBootRead bounds what the boot transformation reads of a file.
const maxBootRead = 1 << 20

// bootTransform applies the boot transformation to root, read from the
// directory src (whose /etc/selinux/config it may read).
func bootTransform(root *tree.Node, src string) error {
	read := func(path string, _ *tree.Node) ([]byte, error) {
		f, err := os.Open(filepath.Join(src, path))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxBootRead))
	}
	if err := rootfs.TransformForBoot(root, read); err != nil {
		return fmt.Errorf("%s: --bootable: %w", src, err)
	}
	return nil
}

func newRepoComputeKargCmd(rf *repoFlags) *cobra.Command {
	var f fsReadFlags
	var ociName string
	cmd := &cobra.Command{
		Use:   "compute-karg [flags] PATH|IMAGE|--oci NAME",
		Short: "Print the kernel argument that boots an image (composefs.digest=… or composefs=…)",
		Long: `Print the composefs kernel argument that makes setup-root boot an image:
"composefs.digest=v1-sha256-12:HEX" for EROFS format 0 and 1 (gocfs's
images), "composefs=HEX" for composefs-rs's legacy format 2; with the global
--insecure, marked insecure ("?"), which boots without fs-verity.

PATH, a directory, is read as cfsctl compute-karg reads it: as create-image
--bootable would store it (container root rules, /boot and /sysroot
emptied, SELinux labels dropped), nothing stored; the algorithm and format
are as for compute-id. IMAGE is an image of the repository (a digest or
refs/NAME), taken as it is. With --oci NAME, the bootable variant of the
stored OCI image NAME, as oci prepare-boot stores it. See docs/boot.md.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if ociName != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, version, err := computeKarg(cmd, rf, &f, ociName, args)
			if err != nil {
				return err
			}
			k := boot.NewKarg(d, version, rf.insecure)
			return rf.output(cmd, struct {
				Karg string `json:"karg"`
			}{k.String()}, func(w io.Writer) { fmt.Fprintln(w, k) })
		},
	}
	f.add(cmd)
	cmd.Flags().Lookup("bootable").Hidden = true
	cmd.Flags().StringVar(&ociName, "oci", "", "the bootable variant of the stored OCI image `NAME`")
	return cmd
}

// computeKarg returns the digest and EROFS format version compute-karg
// prints the karg of.
func computeKarg(cmd *cobra.Command, rf *repoFlags, f *fsReadFlags, ociName string, args []string) (digest.Digest, int, error) {
	if ociName == "" && isDir(args[0]) {
		f.bootable = true
		iopts, err := rf.imageOptions()
		if err != nil {
			return digest.Digest{}, 0, err
		}
		root, alg, err := f.readRoot(cmd, rf, args[0])
		if err != nil {
			return digest.Digest{}, 0, err
		}
		d, err := repo.ImageID(root, alg, iopts)
		return d, 1, err
	}
	var d digest.Digest
	var version int
	err := rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
		var err error
		version = r.Meta().ErofsVersion()
		if ociName != "" {
			d, err = oci.ComputeBootableID(ctx, r, refName(ociName))
		} else {
			d, err = r.Resolve(args[0])
		}
		return err
	})
	return d, version, err
}

func newOCIPrepareBootCmd(rf *repoFlags) *cobra.Command {
	var o boot.PrepareOptions
	cmd := &cobra.Command{
		Use:   "prepare-boot [--bootdir DIR] [--entry-id ID] [--cmdline ARG]... NAME",
		Short: "Store the bootable image of an OCI image, install its kernel, make its state directory",
		Long: `Build the bootable variant of the stored OCI image NAME (its composefs image
with /boot and /sysroot emptied and SELinux labels dropped; an image with an
SELinux policy is refused), store it in the repository, make the state
directory setup-root uses for it (REPO/../state/deploy/DIGEST with var/,
etc/upper and etc/work), install its kernel as a Boot Loader Specification
Type 1 entry in --bootdir (DIR/ID/vmlinuz, DIR/ID/initramfs.img and
DIR/loader/entries/ID.conf with the karg on its options line), and print the
karg, as cfsctl oci prepare-boot does (marked insecure with the global
--insecure). The kernel is /usr/lib/modules/VERSION/vmlinuz with its
initramfs.img; gocfs does not install the Type 1 entries or UKIs an image
carries in /boot, and refuses such an image (--bootdir "" installs nothing).
See docs/boot.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Insecure = rf.insecure
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				root, err := oci.ImageTree(ctx, r, refName(args[0]), oci.Rules{})
				if err != nil {
					return err
				}
				p, err := boot.PrepareBoot(ctx, r, root, o)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				return rf.output(cmd, p, func(w io.Writer) { fmt.Fprintln(w, p.KargText) })
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.BootDir, "bootdir", "/boot", "the boot partition's mount point `DIR` (\"\" for no boot entry)")
	fl.StringVar(&o.EntryID, "entry-id", "", "the boot entry's `ID` (default: the kernel's version)")
	fl.StringArrayVar(&o.Cmdline, "cmdline", nil, "an additional kernel argument (repeatable)")
	return cmd
}
