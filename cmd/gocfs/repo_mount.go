package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
)

func newRepoMountCmd(rf *repoFlags) *cobra.Command {
	var mf repoMountFlags
	cmd := &cobra.Command{
		Use:   "mount NAME MOUNTPOINT",
		Short: "Mount an image of the repository",
		Long: `Mount the image NAME of the repository on MOUNTPOINT, with the object store as
basedir. The image's digest is checked as mount.composefs's digest= option
does. Unmount with "gocfs umount".

The options are cfsctl's: --fuse auto|yes|no, --foreground (a FUSE mount's
server stays in the foreground; by default, as cfsctl, it goes to the
background once the mount is in place), --upperdir and --workdir (a writable
overlay; read-only unless --read-write); and gocfs's below.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := mf.options(cmd)
			if err != nil {
				return err
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			return runMounted(cmd, &mf.policy, args[0], args[1], opts, func(o mount.Options) (*mounter.Mounted, error) {
				return r.Mount(args[0], args[1], o)
			})
		},
	}
	mf.addFlags(cmd)
	completeImages(cmd, rf, 1)
	return cmd
}

// repoMountFlags are the flags of the repository's and OCI's mount
// commands: cfsctl's, and gocfs's --verity and policy flags.
type repoMountFlags struct {
	verity            string
	policy            policyFlags
	foreground        bool
	upperdir, workdir string
	readWrite         bool
}

func (mf *repoMountFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&mf.foreground, "foreground", false, "FUSE: serve in the foreground until unmounted (default: in the background, once mounted)")
	fl.StringVar(&mf.upperdir, "upperdir", "", "writable upper layer directory for overlayfs (needs --workdir)")
	fl.StringVar(&mf.workdir, "workdir", "", "work directory for overlayfs (needs --upperdir)")
	fl.BoolVar(&mf.readWrite, "read-write", false, "mount read-write (needs --upperdir)")
	fl.StringVar(&mf.verity, "verity", "try", "fs-verity checks of the objects: off, try or require")
	addPolicyFlags(cmd, &mf.policy)
	cmd.MarkFlagsMutuallyExclusive("foreground", "background")
}

// options returns the mount options the flags say.
func (mf *repoMountFlags) options(cmd *cobra.Command) (mount.Options, error) {
	mode, err := mount.ParseVerityMode(mf.verity)
	if err != nil {
		return mount.Options{}, fmt.Errorf("--verity: %w", err)
	}
	switch {
	case (mf.upperdir == "") != (mf.workdir == ""):
		return mount.Options{}, errors.New("--upperdir and --workdir go together")
	case mf.readWrite && mf.upperdir == "":
		return mount.Options{}, errors.New("--read-write needs --upperdir (and --workdir)")
	}
	opts := mount.Options{
		Verity:   mode,
		UpperDir: mf.upperdir,
		WorkDir:  mf.workdir,
		ReadOnly: mf.upperdir != "" && !mf.readWrite,
	}
	if !cmd.Flags().Changed("background") {
		mf.policy.background = !mf.foreground
	}
	mf.policy.apply(cmd, &opts)
	return opts, nil
}
