//go:build linux

package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Registry is Debian's docker-registry (CNCF distribution, which has no
// OCI referrers API) serving a test on 127.0.0.1, its storage in a
// temporary directory that outlives Stop, so Start serves it again.
type Registry struct {
	// Addr is the registry's host:port.
	Addr string

	t      testing.TB
	bin    string
	config string
	log    string
	cmd    *exec.Cmd
}

// StartRegistry starts a registry for t and stops it when t ends. The
// binary is installed with apt-get when missing (scripts/install-deps.sh
// installs it too); t is skipped only when it can't be had.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	reg := &Registry{t: t, bin: RegistryBinary(t)}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg.Addr = ln.Addr().String()
	ln.Close()
	reg.config = filepath.Join(dir, "config.yml")
	reg.log = filepath.Join(dir, "registry.log")
	err = os.WriteFile(reg.config, fmt.Appendf(nil, `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, filepath.Join(dir, "storage"), reg.Addr), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	reg.Start()
	t.Cleanup(reg.Stop)
	return reg
}

// Start starts the registry process and waits until it answers /v2/.
func (reg *Registry) Start() {
	reg.t.Helper()
	log, err := os.OpenFile(reg.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		reg.t.Fatal(err)
	}
	defer log.Close()
	reg.cmd = exec.Command(reg.bin, "serve", reg.config)
	reg.cmd.Stdout, reg.cmd.Stderr = log, log
	reg.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := reg.cmd.Start(); err != nil {
		reg.t.Fatalf("starting %s: %v", reg.bin, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + reg.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(reg.log)
			reg.t.Fatalf("registry on %s not ready: %v\n%s", reg.Addr, err, out)
		}
	}
}

// Stop kills the registry process; its storage stays.
func (reg *Registry) Stop() {
	if reg.cmd != nil && reg.cmd.Process != nil {
		reg.cmd.Process.Kill()
		reg.cmd.Wait()
		reg.cmd = nil
	}
}

// RegistryBinary returns the path of Debian's docker-registry, installing
// the package if it is missing; t is skipped only if it can't be installed.
func RegistryBinary(t testing.TB) string {
	t.Helper()
	registryOnce.Do(findRegistry)
	if registryPath == "" {
		t.Skip(registryErr)
	}
	return registryPath
}

var (
	registryOnce sync.Once
	registryPath string
	registryErr  string
)

func findRegistry() {
	for _, n := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(n); err == nil {
			registryPath = p
			return
		}
	}
	if os.Geteuid() != 0 {
		registryErr = "docker-registry is not installed, and installing it needs root"
		return
	}
	cmd := exec.Command("apt-get", "install", "-y", "-q", "docker-registry")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		exec.Command("apt-get", "update", "-q").Run() // the lists may be missing or stale
		out, err = cmd.CombinedOutput()
	}
	if p, lerr := exec.LookPath("docker-registry"); lerr == nil {
		registryPath = p
		return
	}
	registryErr = fmt.Sprintf("docker-registry could not be installed (apt-get install -y docker-registry: %v)\n%s", err, out)
}
