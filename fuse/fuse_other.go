//go:build !linux

package fuse

import (
	"os"

	"github.com/gocfs/gocfs/mount"
)

// Server is a mounted image being served (Linux only).
type Server struct{}

// Mount fails with ErrUnsupported: FUSE mounts need Linux.
func Mount(imagePath, target string, opts mount.Options) (*Server, error) { return nil, ErrUnsupported }

// MountFile fails with ErrUnsupported: FUSE mounts need Linux.
func MountFile(imageFile *os.File, target string, opts mount.Options) (*Server, error) {
	return nil, ErrUnsupported
}

// Unmount fails with ErrUnsupported: FUSE mounts need Linux.
func Unmount(target string, lazy bool) error { return ErrUnsupported }

// Wait returns at once.
func (s *Server) Wait() {}

// Unmount fails with ErrUnsupported.
func (s *Server) Unmount() error { return ErrUnsupported }

// Passthrough reports false.
func (s *Server) Passthrough() bool { return false }

// Stats returns zero counters.
func (s *Server) Stats() Stats { return Stats{} }
