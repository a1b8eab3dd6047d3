package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gocfs/gocfs/fuse"
	"github.com/gocfs/gocfs/mount"
)

// The FUSE side of "gocfs mount" and "gocfs umount". mount.go calls these
// hooks when they are set: mountFlagsHook when it builds the mount
// command, mountRunHook instead of mount.Mount, umountHook instead of
// mount.Unmount.
var (
	mountFlagsHook func(cmd *cobra.Command)
	mountRunHook   func(cmd *cobra.Command, image, target string, opts mount.Options) error
	umountHook     func(target string, lazy bool) error
)

// kernelMount is mount.Mount; tests replace it.
var kernelMount = mount.Mount

func init() {
	mountFlagsHook = addFuseFlags
	mountRunHook = runMountAuto
	umountHook = unmountAny
	registerCommand(newFuseServeCmd)
}

const fuseHelp = `
FUSE: with --fuse, or by itself when not root or when the kernel lacks what a
composefs mount needs (overlayfs data-only layers, EROFS), the image is served
by this process through FUSE instead, read-only, checking every file's content
against its fs-verity digest in userspace before serving it (--verity=require
refuses files without a digest, try checks those that have one, off checks
nothing; try is the default). The command then stays in the foreground until
the mount is unmounted (gocfs umount, fusermount3 -u) or it is interrupted,
unless --background is given. --fuse=false never uses FUSE.`

const fuseExample = `
  gocfs mount --fuse app.cfs /run/app --basedir /composefs/objects --verity=require --background`

// verityFlag is the value of "gocfs mount --verity": a bool for the kernel
// mount (--verity alone is --verity=require), and also require, try or off.
type verityFlag struct {
	inner pflag.Value // the kernel mount's bool
	mode  string      // "require", "try" or "off"; "" when not given
}

func (v *verityFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "require", "true", "1":
		v.mode = "require"
		return v.inner.Set("true")
	case "try":
		v.mode = "try"
		return v.inner.Set("false")
	case "off", "false", "0":
		v.mode = "off"
		return v.inner.Set("false")
	}
	return fmt.Errorf("%q: want require, try or off", s)
}

func (v *verityFlag) String() string {
	if v.mode == "" {
		return v.inner.String()
	}
	return v.mode
}

func (v *verityFlag) Type() string { return "mode" }

// addFuseFlags adds the FUSE flags to "gocfs mount" and makes --verity take
// a mode.
func addFuseFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	if f := fl.Lookup("verity"); f != nil {
		f.Value = &verityFlag{inner: f.Value}
		f.NoOptDefVal = "require"
		f.Usage = "check every file's content against its fs-verity digest: require (alone: --verity), try, or off"
	}
	fl.Bool("fuse", false, "serve the image with FUSE from this process (default: when the kernel mount is not possible; --fuse=false: never)")
	fl.Bool("background", false, "FUSE: return once mounted, leaving the server running (default: serve in the foreground)")
	fl.Bool("allow-other", false, "FUSE: let every user use the mount (default: as root; for others /etc/fuse.conf needs user_allow_other)")
	cmd.Long += "\n" + fuseHelp
	cmd.Example += fuseExample
}

// kernelOnly names an option that only the kernel mount has, or returns "".
func kernelOnly(o *mount.Options) string {
	switch {
	case o.UpperDir != "":
		return "upperdir"
	case o.WorkDir != "":
		return "workdir"
	case o.IDMapPath != "" || o.IDMapFile != nil:
		return "idmap"
	case o.MountNamespace != "":
		return "a mount namespace"
	}
	return ""
}

// runMountAuto mounts with the kernel or with FUSE, as asked or as
// possible.
func runMountAuto(cmd *cobra.Command, image, target string, opts mount.Options) error {
	fl := cmd.Flags()
	vf, _ := fl.Lookup("verity").Value.(*verityFlag)
	if vf != nil && fl.Changed("verity") {
		switch vf.mode {
		case "try":
			opts.Verity = mount.VerityTry
		case "off":
			opts.Verity = mount.VerityOff
		}
	}
	stderr := cmd.ErrOrStderr()
	notice := func(format string, args ...any) { fmt.Fprintf(stderr, "gocfs: "+format+"\n", args...) }
	useFuse, _ := fl.GetBool("fuse")
	explicit := fl.Changed("fuse")
	only := kernelOnly(&opts)
	if useFuse && only != "" {
		return fmt.Errorf("--fuse: FUSE mounts are read-only and cannot have %s; that needs the kernel mount", only)
	}
	if !explicit && only == "" && os.Geteuid() != 0 {
		notice("not root: serving the image with FUSE (--fuse=false to try the kernel mount)")
		useFuse = true
	}
	if !useFuse {
		err := kernelMount(image, target, opts)
		if err == nil {
			return nil
		}
		var fe *mount.FeatureError
		if explicit || only != "" || !(errors.As(err, &fe) || errors.Is(err, mount.ErrNeedRoot)) {
			return fmt.Errorf("mounting %s on %s: %w", image, target, err)
		}
		notice("no kernel mount (%v): serving the image with FUSE instead", err)
	}

	fo := fuse.Options{
		Basedirs:       opts.Basedirs,
		ExpectedDigest: opts.ExpectedDigest,
		NoSuid:         opts.NoSuid,
		NoDev:          opts.NoDev,
		NoExec:         opts.NoExec,
		AllowOther:     os.Geteuid() == 0,
	}
	switch opts.Verity {
	case mount.VerityRequire:
		fo.Verity = fuse.VerityRequire
	case mount.VerityTry:
		fo.Verity = fuse.VerityTry
	}
	if vf != nil && vf.mode == "off" && fl.Changed("verity") {
		fo.Verity = fuse.VerityOff
	}
	if fl.Changed("allow-other") {
		fo.AllowOther, _ = fl.GetBool("allow-other")
	}
	if bg, _ := fl.GetBool("background"); bg {
		return startFuseServer(stderr, image, target, fo)
	}
	return serveFuse(stderr, image, target, fo, nil)
}

// serveFuse mounts and serves until the mount goes away or a signal comes;
// ready, when not nil, is told the outcome of the mount.
func serveFuse(stderr io.Writer, image, target string, fo fuse.Options, ready func(error)) error {
	fo.Log = func(msg string) { fmt.Fprintln(stderr, msg) }
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	srv, err := fuse.Mount(image, target, fo)
	if ready != nil {
		ready(err)
	}
	if err != nil {
		return fmt.Errorf("mounting %s on %s with FUSE: %w", image, target, err)
	}
	how := "reads through this process"
	if srv.Passthrough() {
		how = "FUSE passthrough"
	}
	if ready == nil {
		fmt.Fprintf(stderr, "gocfs: serving %s on %s with FUSE (verity %v, %s); unmount with \"gocfs umount %s\" or stop with Ctrl-C\n", image, target, fo.Verity, how, target)
	}
	go func() {
		for range sigs {
			if err := srv.Unmount(); err != nil {
				fmt.Fprintf(stderr, "gocfs: %v: detaching the mount instead\n", err)
				if err := fuse.Unmount(target, true); err != nil {
					fmt.Fprintf(stderr, "gocfs: %v\n", err)
				}
			}
		}
	}()
	srv.Wait()
	return nil
}

// fuseServeEnv carries the configuration of a background FUSE server, as
// JSON, to the process "gocfs mount --background" starts.
const fuseServeEnv = "GOCFS_FUSE_SERVE"

// fuseServeConfig is what a background server is told.
type fuseServeConfig struct {
	Image, Target  string
	Basedirs       []string
	ExpectedDigest string
	Verity         fuse.VerityMode
	AllowOther     bool
	NoSuid, NoDev  bool
	NoExec         bool
	Syslog         bool // log to syslog, not to standard error
}

// startFuseServer starts a background server (this program, run again as
// "gocfs __fuse-serve" in a session of its own) and returns once it has
// mounted, or with why it could not.
func startFuseServer(stderr io.Writer, image, target string, fo fuse.Options) error {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	cfg := fuseServeConfig{Image: abs(image), Target: abs(target), ExpectedDigest: fo.ExpectedDigest,
		Verity: fo.Verity, AllowOther: fo.AllowOther, NoSuid: fo.NoSuid, NoDev: fo.NoDev, NoExec: fo.NoExec}
	for _, d := range fo.Basedirs {
		cfg.Basedirs = append(cfg.Basedirs, abs(d))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--background: finding this program to run the server: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, "__fuse-serve")
	cmd.Args[0] = "gocfs"
	cmd.Dir = "/"
	// The server keeps our standard error when it is a file or a
	// terminal; a pipe it would hold open after we exit, keeping whoever
	// reads it waiting: then it logs to syslog.
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && (st.Mode().IsRegular() || st.Mode()&os.ModeCharDevice != 0) {
			cmd.Stderr = f
		}
	}
	if cmd.Stderr == nil {
		cfg.Syslog = true
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cmd.Env = append(os.Environ(), fuseServeEnv+"="+string(b))
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("--background: starting the server: %w", err)
	}
	w.Close()
	msg, _ := io.ReadAll(r)
	if string(msg) == "ok\n" {
		fmt.Fprintf(stderr, "gocfs: serving %s on %s with FUSE in the background (pid %d, verity %v); unmount with \"gocfs umount %s\"\n", image, target, cmd.Process.Pid, fo.Verity, target)
		return cmd.Process.Release()
	}
	werr := cmd.Wait()
	if len(msg) > 0 {
		return errors.New(strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("the FUSE server exited before mounting: %v", werr)
}

// newFuseServeCmd is the hidden command a background server runs.
func newFuseServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__fuse-serve",
		Short:  "Serve a FUSE mount in the background (started by gocfs mount --background)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg fuseServeConfig
			if err := json.Unmarshal([]byte(os.Getenv(fuseServeEnv)), &cfg); err != nil {
				return fmt.Errorf("__fuse-serve is started by gocfs mount --background (bad %s: %v)", fuseServeEnv, err)
			}
			status := os.NewFile(3, "status")
			if status == nil {
				return errors.New("__fuse-serve: no status pipe")
			}
			// Messages keep going to the standard error we were given;
			// if that is a pipe that goes away, writes fail, that's all.
			signal.Ignore(syscall.SIGPIPE)
			fo := fuse.Options{Basedirs: cfg.Basedirs, ExpectedDigest: cfg.ExpectedDigest, Verity: cfg.Verity,
				AllowOther: cfg.AllowOther, NoSuid: cfg.NoSuid, NoDev: cfg.NoDev, NoExec: cfg.NoExec}
			var logTo io.Writer = cmd.ErrOrStderr()
			if cfg.Syslog {
				logTo = newSyslog()
			}
			err := serveFuse(logTo, cfg.Image, cfg.Target, fo, func(err error) {
				if err != nil {
					fmt.Fprintf(status, "mounting %s on %s with FUSE: %v\n", cfg.Image, cfg.Target, err)
				} else {
					fmt.Fprintln(status, "ok")
				}
				status.Close()
			})
			if err != nil {
				return exitCode(1, nil)
			}
			return nil
		},
	}
}

// unmountAny unmounts target; a user's own FUSE mount, which umount2
// refuses to them, through fusermount3.
func unmountAny(target string, lazy bool) error {
	var err error
	if lazy {
		err = mount.UnmountLazy(target)
	} else {
		err = mount.Unmount(target)
	}
	if err == nil || !errors.Is(err, syscall.EPERM) {
		return err
	}
	if ferr := fuse.Unmount(target, lazy); ferr != nil {
		return fmt.Errorf("%w (and: %v)", err, ferr)
	}
	return nil
}

// syslogWriter sends each write to the local syslog daemon, as one
// message from gocfs (facility daemon, severity warning), and drops it when
// there is none.
type syslogWriter struct {
	conn net.Conn
	pid  int
}

func newSyslog() io.Writer {
	w := &syslogWriter{pid: os.Getpid()}
	for _, network := range []string{"unixgram", "unix"} {
		if c, err := net.Dial(network, "/dev/log"); err == nil {
			w.conn = c
			break
		}
	}
	return w
}

func (w *syslogWriter) Write(p []byte) (int, error) {
	if w.conn != nil {
		msg := strings.TrimPrefix(strings.TrimSpace(string(p)), "gocfs: ")
		fmt.Fprintf(w.conn, "<28>gocfs[%d]: %s", w.pid, msg)
	}
	return len(p), nil
}
