package snapshotter

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary serves the snapshotter itself when these are set, so
// that the tests can run (and kill) it as a process of its own.
const (
	envRoot    = "GOCFS_TEST_SNAPSHOTTER_ROOT"
	envAddress = "GOCFS_TEST_SNAPSHOTTER_ADDRESS"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(envRoot); root != "" {
		os.Exit(serveForTest(root, os.Getenv(envAddress)))
	}
	os.Exit(m.Run())
}

// serveForTest is gocfs snapshotter --root root --address address.
func serveForTest(root, address string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sn, err := New(ctx, root, Options{Notice: func(m string) { fmt.Fprintln(os.Stderr, m) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sn.Close()
	if err := Serve(ctx, sn, address); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// process is a server the test started, stopped by its PID.
type process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start starts cmd, logging to dir/name.log, and waits until ready says
// it serves.
func start(t testing.TB, dir, name string, cmd *exec.Cmd, ready func() bool) *process {
	t.Helper()
	p := &process{t: t, name: name, cmd: cmd, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	// No Pdeathsig: it fires when the OS thread that started the process
	// ends, which a Go program's threads do (a goroutine that locked its
	// thread and exits); the test's cleanups stop every process.
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for !ready() {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start:\n%s", name, p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("%s not ready after 20s:\n%s", name, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stop ends the process with SIGTERM (SIGKILL after 10 s) and waits.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// kill ends the process with SIGKILL and waits.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// socketReady returns a function that reports whether a Unix socket at
// path accepts connections.
func socketReady(path string) func() bool {
	return func() bool {
		c, err := net.Dial("unix", path)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// startSnapshotter serves a snapshotter with its state under root on
// the socket address, from this test binary.
func startSnapshotter(t testing.TB, dir, root, address string) *process {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envRoot+"="+root, envAddress+"="+address)
	p := start(t, dir, "snapshotter", cmd, socketReady(address))
	t.Cleanup(p.stop)
	return p
}

// needTools returns the paths of the named commands, installing the
// Debian packages that have them if they are missing; the test is skipped
// only when they can't be had.
func needTools(t testing.TB, pkgs map[string]string) map[string]string {
	t.Helper()
	paths := make(map[string]string)
	var missing []string
	for cmd, pkg := range pkgs {
		if p, err := exec.LookPath(cmd); err == nil {
			paths[cmd] = p
		} else {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return paths
	}
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err != nil {
		exec.Command("apt-get", "update", "-q").Run() // the lists may be missing or stale
		if out, err := install(); err != nil {
			t.Skipf("%s not installed, and apt-get install failed: %v\n%s", strings.Join(missing, " "), err, out)
		}
	}
	return needTools(t, pkgs)
}

// containerd is a containerd the test started, with a proxy snapshotter
// plugin "gocfs".
type containerd struct {
	t       testing.TB
	ctr     string
	address string
	proc    *process
}

// startContainerd starts containerd with its root, state and socket in
// dir and the gocfs snapshotter at snapshotter, the CRI plugin off.
func startContainerd(t testing.TB, bin, ctr, dir, snapshotter string) *containerd {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	address := filepath.Join(dir, "containerd.sock")
	config := filepath.Join(dir, "containerd.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[proxy_plugins]
  [proxy_plugins.gocfs]
    type = "snapshot"
    address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address, snapshotter), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "containerd", exec.Command(bin, "--config", config), socketReady(address))
	t.Cleanup(p.stop)
	return &containerd{t: t, ctr: ctr, address: address, proc: p}
}

// run runs ctr in the namespace "test" and returns its output.
func (c *containerd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"--address", c.address, "--namespace", "test"}, args...)
	out, err := exec.CommandContext(ctx, c.ctr, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args[4:], " "), err, out)
	}
	return string(out), nil
}

// must is run, failing the test on an error.
func (c *containerd) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v\ncontainerd's log:\n%s", err, tail(c.proc.output(), 3000))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
