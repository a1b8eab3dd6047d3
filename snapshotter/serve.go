package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"google.golang.org/grpc"
)

// Serve serves sn as containerd's snapshots gRPC service (a proxy
// snapshotter plugin) on the Unix socket address until ctx is done. A
// socket file left at address by an earlier process is replaced; the
// socket is made mode 0600.
func Serve(ctx context.Context, sn *Snapshotter, address string) error {
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if fi, err := os.Lstat(address); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return fmt.Errorf("snapshotter: %s exists and is not a socket", address)
		}
		if err := os.Remove(address); err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if err := os.Chmod(address, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("snapshotter: %w", err)
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			srv.GracefulStop()
		case <-done:
		}
	}()
	err = srv.Serve(l)
	close(done)
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}
