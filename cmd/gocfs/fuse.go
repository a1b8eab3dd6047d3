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

	"github.com/gocfs/gocfs/fuse"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
)

// The flags every mounting command (gocfs mount, --repo mount, oci mount)
// shares, and what they do: parse them into mount.Options, call package
// mounter, and serve a FUSE mount in the foreground or the background.
// The choice between the kernel and FUSE is mounter's.

func init() {
	registerCommand(newFuseServeCmd)
}

const policyHelp = `
Every mount checks the image first (its structure, as "gocfs verify" does;
--no-verify skips that, for images from a trusted source) and is nodev and
nosuid: device nodes in the image do not open as devices, setuid bits do not
take effect (--allow-devices and --allow-suid allow them, for a trusted image
used as a real root file system).

--verity says whether each file's content is checked against its fs-verity
digest: require, try (the default: where the kernel and the object store's
file system support it) or off.

The kernel mounts the image when it can. With --fuse, or by itself when not
root or when the kernel lacks what a composefs mount needs (overlayfs
data-only layers, EROFS), the image is served by this process through FUSE
instead, read-only, checking every file's content against its fs-verity
digest in userspace before serving it. The command then stays in the
foreground until the mount is unmounted (gocfs umount, fusermount3 -u) or it
is interrupted, unless --background is given. --fuse=no never uses FUSE.`

// policyFlags are the flags that reach package mounter.
type policyFlags struct {
	fuse                            fuseMode
	background, allowOther          bool
	noVerify, allowDevices, allowSU bool
}

// fuseMode is the value of --fuse: cfsctl's auto, yes or no ("--fuse
// yes" is joined into "--fuse=yes" before parsing); "--fuse" alone is
// yes, and true and false are yes and no.
type fuseMode string

const (
	fuseAuto fuseMode = "auto"
	fuseYes  fuseMode = "yes"
	fuseNo   fuseMode = "no"
)

func parseFuseMode(s string) (fuseMode, error) {
	switch strings.ToLower(s) {
	case "auto":
		return fuseAuto, nil
	case "yes", "true", "1":
		return fuseYes, nil
	case "no", "false", "0":
		return fuseNo, nil
	}
	return "", fmt.Errorf("%q: want auto, yes or no", s)
}

func (m *fuseMode) String() string {
	if *m == "" {
		return string(fuseAuto)
	}
	return string(*m)
}

func (m *fuseMode) Set(s string) error {
	v, err := parseFuseMode(s)
	if err == nil {
		*m = v
	}
	return err
}

func (m *fuseMode) Type() string { return "auto|yes|no" }

// addPolicyFlags adds the policy flags to cmd.
func addPolicyFlags(cmd *cobra.Command, pf *policyFlags) {
	fl := cmd.Flags()
	fl.BoolVar(&pf.noVerify, "no-verify", false, "do not check the image's structure first (trusted images only)")
	fl.BoolVar(&pf.allowDevices, "allow-devices", false, "let device nodes of the image open as devices (default: nodev)")
	fl.BoolVar(&pf.allowSU, "allow-suid", false, "let setuid and setgid bits of the image take effect (default: nosuid)")
	pf.fuse = fuseAuto
	fl.Var(&pf.fuse, "fuse", "mount with FUSE, served by this process: auto (when the kernel mount is not possible), yes (--fuse alone), or no")
	fl.Lookup("fuse").NoOptDefVal = string(fuseYes)
	fl.BoolVar(&pf.background, "background", false, "FUSE: return once mounted, leaving the server running")
	fl.BoolVar(&pf.allowOther, "allow-other", false, "FUSE: let every user use the mount (default: as root; for others /etc/fuse.conf needs user_allow_other)")
	cmd.Long += "\n" + policyHelp
}

// apply sets what the policy flags say in opts. Flags not given leave
// opts as they are (so that "gocfs mount -o dev" keeps devices allowed).
func (pf *policyFlags) apply(cmd *cobra.Command, opts *mount.Options) {
	fl := cmd.Flags()
	if pf.noVerify {
		opts.NoVerify = true
	}
	if fl.Changed("allow-devices") {
		opts.AllowDevices = pf.allowDevices
	}
	if fl.Changed("allow-suid") {
		opts.AllowSetuid = pf.allowSU
	}
	switch pf.fuse {
	case fuseYes:
		opts.Method = mount.FUSE
	case fuseNo:
		opts.Method = mount.Kernel
	}
	opts.FUSE.AllowOther = os.Geteuid() == 0
	if fl.Changed("allow-other") {
		opts.FUSE.AllowOther = pf.allowOther
	}
}

// runMounted mounts with do (a call into package mounter, directly or
// through the repository) and, for a FUSE mount served by this process,
// serves it until it is unmounted or a signal comes. name and target name
// the mount in errors.
func runMounted(cmd *cobra.Command, pf *policyFlags, name, target string, opts mount.Options, do func(mount.Options) (*mounter.Mounted, error)) error {
	stderr := cmd.ErrOrStderr()
	opts.Notice = noticeTo(stderr)
	if pf.background {
		opts.FUSE.Start = func(image, target string, o mount.Options) error {
			return startFuseServer(stderr, image, target, o, true)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	m, err := do(opts)
	if err != nil {
		if errors.Is(err, mount.ErrInvalidImage) {
			err = fmt.Errorf("%w (--no-verify mounts it unchecked: for trusted images only)", err)
		}
		return fmt.Errorf("mounting %s on %s: %w", name, target, err)
	}
	if m.Server == nil {
		return nil
	}
	how := "reads through this process"
	if m.Server.Passthrough() {
		how = "FUSE passthrough"
	}
	fmt.Fprintf(stderr, "gocfs: serving %s on %s with FUSE (verity %v, %s); unmount with \"gocfs umount %s\" or stop with Ctrl-C\n", name, target, opts.Verity, how, target)
	serveUntilSignal(stderr, m, sigs)
	return nil
}

// noticeTo returns a Notice function that prints each message to w, with
// the program's name before it (once: the FUSE server's own messages carry
// it already).
func noticeTo(w io.Writer) func(string) {
	return func(msg string) { fmt.Fprintf(w, "gocfs: %s\n", strings.TrimPrefix(msg, "gocfs: ")) }
}

// serveUntilSignal waits until the FUSE mount m is unmounted, unmounting
// it when a signal comes.
func serveUntilSignal(stderr io.Writer, m *mounter.Mounted, sigs <-chan os.Signal) {
	go func() {
		for range sigs {
			if err := m.Unmount(); err != nil {
				fmt.Fprintf(stderr, "gocfs: %v: detaching the mount instead\n", err)
				if err := fuse.Unmount(m.Target, true); err != nil {
					fmt.Fprintf(stderr, "gocfs: %v\n", err)
				}
			}
		}
	}()
	m.Wait()
}

// fuseServeEnv carries the configuration of a background FUSE server, as
// JSON, to the process "gocfs mount --background" starts.
const fuseServeEnv = "GOCFS_FUSE_SERVE"

// fuseServeConfig is what a background server is told.
type fuseServeConfig struct {
	Image, Target string
	Options       mount.Options
	Syslog        bool // log to syslog, not to standard error
}

// startFuseServer starts a background server (this program, run again as
// "gocfs __fuse-serve" in a session of its own) and returns once it has
// mounted, or with why it could not; with announce, it says so on stderr.
func startFuseServer(stderr io.Writer, image, target string, o mount.Options, announce bool) error {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	cfg := fuseServeConfig{Image: abs(image), Target: abs(target), Options: o}
	cfg.Options.Basedirs = nil
	for _, d := range o.Basedirs {
		cfg.Options.Basedirs = append(cfg.Options.Basedirs, abs(d))
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
	cfg.Syslog = cmd.Stderr == nil
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
		if !announce {
			return cmd.Process.Release()
		}
		fmt.Fprintf(stderr, "gocfs: serving %s on %s with FUSE in the background (pid %d, verity %v); unmount with \"gocfs umount %s\"\n", image, target, cmd.Process.Pid, o.Verity, target)
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
			var logTo io.Writer = cmd.ErrOrStderr()
			if cfg.Syslog {
				logTo = newSyslog()
			}
			return serveBackground(logTo, status, &cfg)
		},
	}
}

// serveBackground mounts as cfg says, tells status the outcome ("ok", or
// the error, once) and serves until the mount goes away or a signal comes.
func serveBackground(logTo io.Writer, status *os.File, cfg *fuseServeConfig) error {
	opts := cfg.Options
	opts.Method = mount.FUSE
	opts.Notice = noticeTo(logTo)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	m, err := mounter.Mount(cfg.Image, cfg.Target, opts)
	if err != nil {
		fmt.Fprintln(status, err)
		status.Close()
		return exitCode(1, nil)
	}
	fmt.Fprintln(status, "ok")
	status.Close()
	serveUntilSignal(logTo, m, sigs)
	return nil
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
