package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/snapshotter"
)

func init() { registerCommand(newSnapshotterCmd) }

func newSnapshotterCmd() *cobra.Command {
	var address, root, verity, mountOpts string
	cmd := &cobra.Command{
		Use:   "snapshotter --address SOCKET --root DIR",
		Short: "Serve a containerd snapshotter over a gocfs repository",
		Long: `Serve containerd's snapshots API on the Unix socket SOCKET (a proxy
snapshotter plugin), keeping its state under DIR: committed layers are imported
into a gocfs repository (DIR/repo), files stored once across all images, and
each chain of layers is mounted as one composefs image. Configure containerd
with:

  [proxy_plugins.gocfs]
    type = "snapshot"
    address = "SOCKET"

and pull with --snapshotter gocfs. See docs/containerd.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if address == "" || root == "" {
				return fmt.Errorf("snapshotter: --address and --root are required")
			}
			vm, err := mount.ParseVerityMode(verity)
			if err != nil {
				return err
			}
			opts := snapshotter.Options{
				Verity: vm,
				Notice: func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) },
			}
			if mountOpts != "" {
				opts.MountOptions = strings.Split(mountOpts, ",")
			}
			ctx, stop := interruptible()
			defer stop()
			sn, err := snapshotter.New(ctx, root, opts)
			if err != nil {
				return err
			}
			defer sn.Close()
			return snapshotter.Serve(ctx, sn, address)
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the Unix socket to serve on")
	cmd.Flags().StringVar(&root, "root", "", "the directory of the snapshotter's state (absolute)")
	cmd.Flags().StringVar(&verity, "verity", "try", "fs-verity checking of the chain mounts: try, require or off")
	cmd.Flags().StringVar(&mountOpts, "mount-options", "", "options added to the overlay mounts of active snapshots (comma-separated, e.g. nodev)")
	return cmd
}
