package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/boot"
)

func init() { registerPersonality("composefs-setup-root", newSetupRootCmd) }

func newSetupRootCmd() *cobra.Command {
	var o boot.Options
	cmd := &cobra.Command{
		Use:     "composefs-setup-root [--sysroot DIR] [--config FILE] [--cmdline CMDLINE] [--target DIR]",
		Aliases: []string{"setup-root"},
		Short:   "Mount the composefs image the kernel command line names as the new root (initramfs)",
		Long: `Run in an initramfs, after the root file system's device is mounted at the
sysroot and before switch_root: read the composefs karg from /proc/cmdline
(composefs=[?]DIGEST or composefs.digest=[?]v1-sha256-12:DIGEST), open the
repository SYSROOT/composefs, mount the image with that digest with
overlayfs verity=require (without it only when the karg has the insecure
"?" mark, which is reported loudly), prepare /etc and /var as the
configuration file says (state in SYSROOT/state/deploy/DIGEST), and put the
new root at the sysroot, with the old sysroot at /sysroot inside it. Every
failure names the step, and nothing stays mounted after one. As
composefs-rs's composefs-setup-root; see docs/boot.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Notice = func(msg string) { fmt.Fprintf(os.Stderr, "composefs-setup-root: %s\n", msg) }
			res, err := boot.SetupRoot(o)
			if err != nil {
				return err
			}
			verity := "fs-verity required"
			if !res.Verity {
				verity = "INSECURE, without fs-verity"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "composefs-setup-root: mounted image %s at %s (%s; /etc %s, /var %s)\n",
				res.Karg.Digest, res.Target, verity, res.Config.EtcMode(), res.Config.VarMode())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Sysroot, "sysroot", boot.DefaultSysroot, "the mounted root file system holding composefs/ and state/")
	fl.StringVar(&o.ConfigPath, "config", boot.DefaultConfigPath, "the configuration `FILE` (a missing file means the defaults)")
	fl.StringVar(&o.Cmdline, "cmdline", "", "the kernel command line (default: /proc/cmdline)")
	fl.StringVar(&o.Target, "target", "", "mount the new root at `DIR` and leave the sysroot alone (for testing)")
	return cmd
}
