package main

// The composefs-fuse personality: upstream composefs's FUSE server
// (tools/cfs-fuse.c), its command line (libfuse's, with composefs's -o
// source=, basedir= and noacl), served by package fuse through package
// mounter.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
)

func init() { registerPersonality("composefs-fuse", newComposefsFuseCmd) }

// cfsFuseFlags are composefs-fuse's flags, libfuse's.
type cfsFuseFlags struct {
	opts                      []string
	foreground, debug, single bool
}

const cfsFuseHelp = `Serve the composefs image named by -o source= on MOUNTPOINT through FUSE,
read-only, with the object store named by -o basedir=, as upstream's
composefs-fuse does. Once the mount is in place the server goes to the
background (-f: it stays in the foreground until the mount is unmounted or
it is interrupted). Unmount with umount, fusermount3 -u or gocfs umount.

Each file's content is checked against the fs-verity digest the image
records for it, in userspace, before it is served (upstream's server checks
none): -o verity requires a digest for every file, -o noverity checks
nothing. The image's structure is checked before it is mounted. The mount
is nodev and nosuid unless -o dev, -o suid.

-o takes comma-separated options (a backslash escapes a comma):
  source=IMAGE       the composefs image (required)
  basedir=DIR        the object store (required)
  noacl              upstream: ignore the image's POSIX ACLs; gocfs always
                     applies them and says so
  allow_other        let every user use the mount (only the mounting user
                     can otherwise, as with any FUSE mount)
  debug              log every request (implies -f)
  dev, suid, noexec  as mount(8)
  digest=HEX         gocfs: refuse the image unless it has this fs-verity digest
  verity, tryverity, noverity
                     gocfs: require, try (the default) or skip the content checks
  noverify           gocfs: skip the structural check (trusted images only)
libfuse's ro, default_permissions (always in effect), nodev, nosuid, exec,
atime, noatime, relatime, diratime, nodiratime, sync, async, dirsync,
clone_fd, max_idle_threads=N, max_threads=N, max_read=N, fsname=NAME and
subtype=NAME are accepted and have no effect; rw, allow_root and
auto_unmount are refused, as is any other option.`

func newComposefsFuseCmd() *cobra.Command {
	var f cfsFuseFlags
	cmd := &cobra.Command{
		Use:   "composefs-fuse [-f] [-d] [-s] -o source=IMAGE,basedir=DIR[,OPTION]... MOUNTPOINT",
		Short: "Mount a composefs image with FUSE (upstream composefs-fuse's command line)",
		Long:  cfsFuseHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitCode(1, fmt.Errorf("usage: composefs-fuse [options] <mountpoint>"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runComposefsFuse(cmd, &f, args[0]) },
	}
	setVersion(cmd)
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.opts, "options", "o", nil, "mount options, comma-separated (see above)")
	fl.BoolVarP(&f.foreground, "foreground", "f", false, "stay in the foreground")
	fl.BoolVarP(&f.debug, "debug", "d", false, "log every request (implies -f)")
	fl.BoolVarP(&f.single, "single-thread", "s", false, "accepted for libfuse compatibility; no effect")
	return cmd
}

// cfsFuseOptions is what -o says.
type cfsFuseOptions struct {
	source string
	opts   mount.Options
	noACL  bool
}

// Options of libfuse that gocfs accepts and ignores (with a value, and
// without).
var (
	fuseIgnoredValue = []string{"max_idle_threads", "max_threads", "max_read", "fsname", "subtype"}
	fuseIgnored      = []string{"ro", "default_permissions", "nodev", "nosuid", "exec", "atime", "noatime",
		"relatime", "diratime", "nodiratime", "sync", "async", "dirsync", "clone_fd"}
)

// parseCfsFuseOptions parses the -o options.
func parseCfsFuseOptions(list []string) (*cfsFuseOptions, error) {
	o := &cfsFuseOptions{}
	o.opts.Method = mount.FUSE
	var unknown []string
	for _, s := range list {
		for _, opt := range splitFuseOptions(s) {
			ok, err := o.set(opt)
			if err != nil {
				return nil, err
			}
			if !ok {
				unknown = append(unknown, "-o "+opt)
			}
		}
	}
	switch {
	case len(unknown) > 0:
		return nil, fmt.Errorf("unknown option(s): '%s'", strings.Join(unknown, "', '"))
	case o.source == "":
		return nil, errors.New("no image: -o source=IMAGE is required")
	case len(o.opts.Basedirs) == 0:
		return nil, errors.New("no object store: -o basedir=DIR is required")
	}
	return o, nil
}

// set applies one option; false for an unknown one.
func (o *cfsFuseOptions) set(opt string) (bool, error) {
	key, value, hasValue := strings.Cut(opt, "=")
	switch {
	case key == "source" && hasValue:
		o.source = value
	case key == "basedir" && hasValue:
		o.opts.Basedirs = []string{value}
	case key == "digest" && hasValue:
		o.opts.ExpectedDigest = value
	case hasValue:
		return contains(fuseIgnoredValue, key), nil
	case key == "rw":
		return true, errors.New("-o rw: composefs images are mounted read-only")
	case key == "allow_root", key == "auto_unmount":
		return true, fmt.Errorf("-o %s is not supported by gocfs's FUSE server", key)
	default:
		return o.setFlag(key), nil
	}
	return true, nil
}

// setFlag applies an option without a value; false for an unknown one.
func (o *cfsFuseOptions) setFlag(key string) bool {
	switch key {
	case "noacl":
		o.noACL = true
	case "allow_other":
		o.opts.FUSE.AllowOther = true
	case "debug":
		o.opts.FUSE.Debug = true
	case "dev":
		o.opts.AllowDevices = true
	case "suid":
		o.opts.AllowSetuid = true
	case "noexec":
		o.opts.NoExec = true
	case "verity":
		o.opts.Verity = mount.VerityRequire
	case "tryverity":
		o.opts.Verity = mount.VerityTry
	case "noverity":
		o.opts.Verity = mount.VerityOff
	case "noverify":
		o.opts.NoVerify = true
	default:
		return contains(fuseIgnored, key)
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// splitFuseOptions splits a -o argument at commas, as libfuse does: a
// backslash makes the next character (a comma, a backslash) literal.
func splitFuseOptions(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	if cur.Len() > 0 || len(out) > 0 {
		out = append(out, cur.String())
	}
	return out
}

func runComposefsFuse(cmd *cobra.Command, f *cfsFuseFlags, target string) error {
	o, err := parseCfsFuseOptions(f.opts)
	if err != nil {
		return exitCode(1, err)
	}
	stderr := cmd.ErrOrStderr()
	say := func(msg string) { fmt.Fprintf(stderr, "composefs-fuse: %s\n", strings.TrimPrefix(msg, "gocfs: ")) }
	if o.noACL {
		say("-o noacl: ignored; the image's POSIX ACLs are applied")
	}
	opts := o.opts
	opts.Notice = say
	opts.FUSE.Debug = opts.FUSE.Debug || f.debug
	if !f.foreground && !opts.FUSE.Debug {
		opts.FUSE.Start = func(image, target string, o mount.Options) error {
			return startFuseServer(stderr, image, target, o, false)
		}
	}
	return serveFuse(stderr, o.source, target, opts)
}

// serveFuse mounts image on target with FUSE and, unless the server was
// started in the background, serves it until it is unmounted or a signal
// comes.
func serveFuse(stderr io.Writer, image, target string, opts mount.Options) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	m, err := mounter.Mount(image, target, opts)
	if err != nil {
		return exitCode(1, fmt.Errorf("mounting %s on %s: %w", image, target, err))
	}
	if m.Server != nil {
		serveUntilSignal(stderr, m, sigs)
	}
	return nil
}
