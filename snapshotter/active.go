package snapshotter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"golang.org/x/sys/unix"
)

// Prepare creates the active snapshot key on top of the committed
// snapshot parent ("" for none) and returns its mounts: an overlay of a
// new upper directory over the composefs mount of the parent's chain, or
// a bind mount of the upper directory when there is no parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

// View creates the read-only snapshot key of the committed snapshot
// parent and returns its mount: a read-only bind mount of the composefs
// mount of the parent's chain (of an empty directory when there is no
// parent).
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

// create makes an active or view snapshot: the parent's chain mounted
// first (its image built when it is the first use), then the snapshot's
// directory made under a temporary name, recorded, and renamed to its ID.
func (s *Snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) (_ []mount.Mount, retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lower rootAttrs
	var parentID string
	if parent != "" {
		var err error
		if parentID, lower, err = s.useChain(ctx, parent); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				s.releaseChain(ctx, parentID)
			}
		}()
	}
	td, err := os.MkdirTemp(filepath.Join(s.root, snapshotsDir), "new-")
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	defer func() {
		if td != "" {
			os.RemoveAll(td)
		}
	}()
	if err := s.makeDirs(td, kind, parent, lower); err != nil {
		return nil, err
	}
	var sn storage.Snapshot
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		if sn, err = storage.CreateSnapshot(ctx, kind, key, parent, opts...); err != nil {
			return err
		}
		if err := os.Rename(td, s.snapshotPath(sn.ID)); err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
		td = ""
		return nil
	})
	if err != nil {
		if td == "" { // renamed, but not recorded
			os.RemoveAll(s.snapshotPath(sn.ID))
		}
		return nil, err
	}
	return s.mounts(sn), nil
}

// makeDirs makes the upper (fs) and, for an active snapshot with a
// parent, the work directory of a new snapshot in dir. The upper
// directory's root gets the attributes of the root below it (overlayfs
// shows the upper root's), the implicit root's when there is no parent.
func (s *Snapshotter) makeDirs(dir string, kind snapshots.Kind, parent string, lower rootAttrs) error {
	upper := filepath.Join(dir, "fs")
	if err := os.Mkdir(upper, 0o755); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if kind == snapshots.KindActive && parent != "" {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
	}
	if parent == "" {
		lower = implicitRoot
	}
	if err := os.Lchown(upper, int(lower.uid), int(lower.gid)); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if err := os.Chmod(upper, os.FileMode(lower.mode&0o777)|unixModeBits(lower.mode)); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	t := time.Unix(0, 0)
	if parent != "" {
		t = lower.mtime
	}
	if err := os.Chtimes(upper, t, t); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	return nil
}

// unixModeBits turns the setuid, setgid and sticky bits of a Unix mode
// into Go's.
func unixModeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// mounts returns the mounts of an active or view snapshot.
func (s *Snapshotter) mounts(sn storage.Snapshot) []mount.Mount {
	if len(sn.ParentIDs) == 0 {
		rw := "rw"
		if sn.Kind == snapshots.KindView {
			rw = "ro"
		}
		return []mount.Mount{{Type: "bind", Source: s.upperPath(sn.ID), Options: []string{rw, "rbind"}}}
	}
	lower := s.chainPath(sn.ParentIDs[0])
	if sn.Kind == snapshots.KindView {
		return []mount.Mount{{Type: "bind", Source: lower, Options: []string{"ro", "rbind"}}}
	}
	opts := []string{
		"workdir=" + s.workPath(sn.ID),
		"upperdir=" + s.upperPath(sn.ID),
		"lowerdir=" + lower,
	}
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: append(opts, s.opts.MountOptions...)}}
}
