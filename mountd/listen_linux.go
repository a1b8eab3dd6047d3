package mountd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Listen returns the listener to serve on: the socket systemd passed
// (socket activation: LISTEN_PID and LISTEN_FDS, the first descriptor,
// 3), or else a new Unix socket at path (a stale socket there is
// replaced), which every user may connect to: who may use the service is
// the policy's business, checked by each caller's credentials.
func Listen(path string) (*net.UnixListener, error) {
	if l, err := activated(); l != nil || err != nil {
		return l, err
	}
	if path == "" {
		path = DefaultSocket
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("mountd: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("mountd: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("mountd: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("mountd: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("mountd: %w", err)
	}
	return l, nil
}

// activated returns the socket systemd passed, or nil when there is none.
func activated() (*net.UnixListener, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	f := os.NewFile(3, "systemd socket")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("mountd: the socket systemd passed: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, errors.New("mountd: the socket systemd passed is not a Unix stream socket")
	}
	return ul, nil
}
