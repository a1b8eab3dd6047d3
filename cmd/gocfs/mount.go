package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
)

func init() {
	registerPersonality("mount.composefs", newMountComposefsCmd)
	registerCommand(newMountCmd)
	registerCommand(newUmountCmd)
}

const mountComposefsUsage = `usage: %[1]s [-t type] [-o opt[,opts..]] IMAGE MOUNTPOINT
Example:
  %[1]s -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage
or, as a mount helper:
  mount -t composefs -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage

Supported options:
  basedir=PATH[:PATH]    Specify location of basedir(s)
  digest=DIGEST          Specify required image digest
  idmap=PATH             Specify path to a user namespace whose ID mapping should be used
  verity                 Require all files to have specified and valid fs-verity digests
  tryverity              If supported by kernel, require fs-verity
  ro                     Read only
  rw                     Read/write
  upperdir               Overlayfs upperdir
  workdir                Overlayfs workdir
  noverify               Do not check the image's structure first (gocfs's own:
                         for images from a trusted source only)
  nosuid,nodev,noexec,noatime,nodiratime,strictatime (and suid,dev,exec,
  atime,relatime,diratime): mount flags

The image is checked (its structure, as "gocfs verify" does) before the
kernel sees it. As with upstream, devices and setuid bits work unless nodev
or nosuid is given.

Flags a mount helper gets from mount(8): -s (ignore unknown options),
-f (do not mount), -n (ignored: there is no mtab), -v (verbose),
-N NAMESPACE (mount in the mount namespace of a PID or a namespace file).
`

// helperArgs is a mount.composefs command line.
type helperArgs struct {
	image, target string
	options       string
	haveOptions   bool
	sloppy        bool
	fake          bool
	verbose       bool
	namespace     string
	help          bool
}

// parseHelperArgs parses a mount.composefs command line the way getopt(3)
// does with "ht:o:" (upstream's options) plus "sfnvN:" (what mount(8)
// passes to helpers): options may come before, between or after the
// operands, short options may be grouped ("-nvo OPTS", "-oOPTS"), and "--"
// ends the options. Like getopt, a repeated -o replaces the earlier one.
func parseHelperArgs(args []string) (helperArgs, error) {
	var h helperArgs
	var operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			switch c {
			case 'h':
				h.help = true
			case 's':
				h.sloppy = true
			case 'f':
				h.fake = true
			case 'n':
			case 'v':
				h.verbose = true
			case 't', 'o', 'N':
				var v string
				if j+1 < len(a) {
					v = a[j+1:]
				} else if i+1 < len(args) {
					i++
					v = args[i]
				} else {
					return h, fmt.Errorf("option requires an argument -- '%c'", c)
				}
				switch c {
				case 't':
					if v != "composefs" {
						return h, fmt.Errorf("unsupported fs type '%s'", v)
					}
				case 'o':
					h.options, h.haveOptions = v, true
				case 'N':
					h.namespace = v
				}
				j = len(a)
			default:
				return h, fmt.Errorf("invalid option -- '%c'", c)
			}
		}
	}
	if h.help {
		return h, nil
	}
	switch len(operands) {
	case 0:
		//lint:ignore ST1005 upstream's exact message
		return h, errors.New("No source path specified")
	case 1:
		//lint:ignore ST1005 upstream's exact message
		return h, errors.New("No mount path specified")
	case 2:
	default:
		return h, fmt.Errorf("too many arguments: %q", operands[2:])
	}
	h.image, h.target = operands[0], operands[1]
	return h, nil
}

func newMountComposefsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mount.composefs [-t composefs] [-o OPTIONS] IMAGE MOUNTPOINT",
		Short: "Mount a composefs image (upstream mount.composefs syntax; mount -t composefs helper)",
		Long: `Mount a composefs image, with the command line of upstream's mount.composefs.
Linked as /sbin/mount.composefs it is the helper "mount -t composefs" runs.
Run with -h for the options.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMountComposefs(cmd.Name(), args, cmd.ErrOrStderr())
		},
	}
}

func runMountComposefs(prog string, args []string, stderr io.Writer) error {
	h, err := parseHelperArgs(args)
	if h.help {
		fmt.Fprintf(stderr, mountComposefsUsage, prog)
		return nil
	}
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "%s: %s\n", prog, msg)
		fmt.Fprintf(stderr, mountComposefsUsage, prog)
		return exitCode(1, nil)
	}
	if err != nil {
		return usage(err.Error())
	}
	var opts mount.Options
	if h.haveOptions {
		if h.sloppy {
			var skipped []string
			opts, skipped, err = mount.ParseOptionsSloppy(h.options)
			for _, k := range skipped {
				fmt.Fprintf(stderr, "%s: ignoring unsupported option %q\n", prog, k)
			}
		} else {
			opts, err = mount.ParseOptions(h.options)
		}
		if err != nil {
			return exitCode(1, err)
		}
	}
	if len(opts.Basedirs) == 0 {
		return usage("No object dirs specified (-o basedir=PATH)")
	}
	opts.Notice = func(msg string) { fmt.Fprintf(stderr, "%s: %s\n", prog, msg) }
	if h.fake {
		if h.verbose {
			fmt.Fprintf(stderr, "%s: not mounting %s on %s (-f)\n", prog, h.image, h.target)
		}
		return nil
	}
	if h.namespace != "" {
		opts.MountNamespace = h.namespace
		if _, err := strconv.Atoi(h.namespace); err == nil {
			opts.MountNamespace = "/proc/" + h.namespace + "/ns/mnt"
		}
	}
	opts.Method = mount.Kernel // a mount helper must not stay to serve FUSE
	if _, err := mounter.Mount(h.image, h.target, opts); err != nil {
		return exitCode(1, fmt.Errorf("failed to mount composefs %s: %w", h.image, err))
	}
	if h.verbose {
		fmt.Fprintf(stderr, "%s: mounted %s on %s\n", prog, h.image, h.target)
	}
	return nil
}

type mountFlags struct {
	basedirs          []string
	digest            string
	verity            string
	tryverity         bool
	upperdir, workdir string
	idmap             string
	ro                bool
	options           string
	policy            policyFlags
	mountd            string
}

func newMountCmd() *cobra.Command { return mountCmd(&mountFlags{}) }

// mountCmd is the "gocfs mount" command, its flags parsed into f.
func mountCmd(f *mountFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mount IMAGE MOUNTPOINT --basedir DIR [flags] [-- COMMAND...]",
		Short: "Mount a composefs image",
		Long: `Mount the composefs image IMAGE on the directory MOUNTPOINT, with its file
content taken from the object store directory (or directories) given with
--basedir. Without --upperdir the mount is read-only.

Unlike mount.composefs's digest= option, --digest only checks the image;
--verity=require has overlayfs check every file's content against its
fs-verity digest as well (the full chain of trust).

-o takes mount.composefs options (basedir=…,digest=…,dev,suid…) on top of
gocfs mount's defaults; the flags given beside it add to or override them.

Run by a user other than root, gocfs mount asks the gocfs mountd service
(--mountd, when its socket is there) for a kernel mount: the image is
checked by the service, and the mount, id-mapped to the user, is attached
in a new user and mount namespace, where COMMAND (the user's shell when
none is given) runs. When the service is not there or refuses, the image is
served with FUSE instead. gocfs says which it used.`,
		Example: `  gocfs mount app.cfs /run/app --basedir /composefs/objects
  gocfs mount app.cfs /run/app --basedir /composefs/objects --digest 8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52 --verity
  gocfs mount app.cfs /run/app --basedir /composefs/objects --upperdir /var/app/upper --workdir /var/app/work
  gocfs mount rootfs.cfs /sysroot --basedir /composefs/objects --allow-devices --allow-suid
  gocfs mount --fuse app.cfs /run/app --basedir /composefs/objects --verity=require --background`,
		Args: mountArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runMount(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringArrayVar(&f.basedirs, "basedir", nil, "object store directory (repeat for more; searched in order)")
	fl.StringVar(&f.digest, "digest", "", "refuse the image unless its fs-verity digest is this (hex SHA-256)")
	fl.StringVar(&f.verity, "verity", "try", "check every file's content against its fs-verity digest: require (alone: --verity), try, or off")
	fl.Lookup("verity").NoOptDefVal = "require"
	fl.BoolVar(&f.tryverity, "tryverity", false, "the same as --verity=try")
	fl.StringVar(&f.upperdir, "upperdir", "", "make the mount writable, with changes in this directory (needs --workdir)")
	fl.StringVar(&f.workdir, "workdir", "", "overlayfs work directory, empty, on the file system of --upperdir")
	fl.StringVar(&f.idmap, "idmap", "", "idmap the mount with this user namespace (/proc/PID/ns/user)")
	fl.BoolVar(&f.ro, "ro", false, "mount read-only even with --upperdir")
	fl.StringVarP(&f.options, "options", "o", "", "mount.composefs options (comma-separated)")
	addPolicyFlags(cmd, &f.policy)
	mountdFlag(cmd, &f.mountd)
	cmd.MarkFlagsMutuallyExclusive("verity", "tryverity")
	return cmd
}

// mountArgs takes IMAGE MOUNTPOINT, and a command only after "--".
func mountArgs(cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	if dash < 0 {
		dash = len(args)
	}
	if dash != 2 {
		return fmt.Errorf("want IMAGE MOUNTPOINT (and a command only after --), got %d arguments", dash)
	}
	if len(args) > 2 && dash == 2 && cmd.ArgsLenAtDash() < 0 {
		return fmt.Errorf("a command goes after --")
	}
	return nil
}

// parseVerityFlag parses the value of --verity: a mode, or a boolean
// (true is require, false off) as the flag was before it took modes.
func parseVerityFlag(s string) (mount.VerityMode, error) {
	switch strings.ToLower(s) {
	case "true", "1":
		return mount.VerityRequire, nil
	case "false", "0":
		return mount.VerityOff, nil
	}
	m, err := mount.ParseVerityMode(s)
	if err != nil {
		return 0, fmt.Errorf("--verity %q: want require, try or off", s)
	}
	return m, nil
}

// mountOptions turns the flags of "gocfs mount" into mount.Options: this
// package's defaults, then -o, then the other flags.
func (f *mountFlags) mountOptions(cmd *cobra.Command) (mount.Options, error) {
	var opts mount.Options
	if f.options != "" {
		if err := opts.Parse(f.options); err != nil {
			return opts, err
		}
	}
	fl := cmd.Flags()
	if fl.Changed("basedir") {
		opts.Basedirs = append(opts.Basedirs, f.basedirs...)
	}
	if fl.Changed("digest") {
		opts.ExpectedDigest = f.digest
	}
	if fl.Changed("verity") {
		m, err := parseVerityFlag(f.verity)
		if err != nil {
			return opts, err
		}
		opts.Verity = m
	}
	if f.tryverity {
		opts.Verity = mount.VerityTry
	}
	if fl.Changed("upperdir") {
		opts.UpperDir = f.upperdir
	}
	if fl.Changed("workdir") {
		opts.WorkDir = f.workdir
	}
	if fl.Changed("idmap") {
		opts.IDMapPath = f.idmap
	}
	if f.ro {
		opts.ReadOnly = true
	}
	f.policy.apply(cmd, &opts)
	return opts, nil
}

func runMount(cmd *cobra.Command, f *mountFlags, args []string) error {
	opts, err := f.mountOptions(cmd)
	if err != nil {
		return err
	}
	if len(opts.Basedirs) == 0 {
		return errors.New("no object store given: use --basedir DIR (the --digest-store the image was built with)")
	}
	for _, d := range opts.Basedirs {
		if strings.Contains(d, ":") {
			if _, err := os.Stat(d); err != nil {
				return fmt.Errorf("--basedir %s: %w (give several stores as separate --basedir flags)", d, err)
			}
		}
	}
	if opts.Method == mount.FUSE {
		if k := opts.KernelOnly(); k != "" {
			return fmt.Errorf("--fuse: FUSE mounts are read-only and cannot have %s; that needs the kernel mount", k)
		}
	}
	image, target, command := args[0], args[1], args[2:]
	if mountdUsable(f.mountd, &opts) {
		done, err := mountThroughMountd(cmd.ErrOrStderr(), f.mountd, image, target, &opts, command)
		if done {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "gocfs: no mount through gocfs mountd: serving the image with FUSE instead\n")
	}
	if len(command) > 0 {
		return errors.New("a command after -- runs only with a mount through gocfs mountd (not root, service running)")
	}
	return runMounted(cmd, &f.policy, image, target, opts, func(o mount.Options) (*mounter.Mounted, error) {
		return mounter.Mount(image, target, o)
	})
}

func newUmountCmd() *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "umount MOUNTPOINT",
		Short: "Unmount a composefs mount",
		Long: `Unmount the composefs mount (or any mount) at MOUNTPOINT. With --lazy it is
detached at once and goes away when nothing uses it any more.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return unmountAny(args[0], lazy) // also a user's FUSE mount
		},
	}
	cmd.Flags().BoolVarP(&lazy, "lazy", "l", false, "detach now, finish unmounting when no longer busy")
	return cmd
}
