package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/errdefs"

	cfsmount "github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// refPrefix starts the names the snapshotter gives in its repository:
// streams/refs/snapshotter/ID is the layer of the committed snapshot ID,
// images/refs/snapshotter/ID the composefs image of its chain. They are
// the repository's garbage collection roots for what containerd uses.
const refPrefix = "snapshotter/"

func refName(id string) string { return refPrefix + id }

// chain returns the IDs of the committed snapshot key and of its
// parents, the bottom one first.
func chain(ctx context.Context, key string) ([]string, error) {
	var ids []string
	for k := key; k != ""; {
		id, info, _, err := storage.GetInfo(ctx, k)
		if err != nil {
			return nil, err
		}
		if info.Kind != snapshots.KindCommitted {
			return nil, fmt.Errorf("snapshotter: parent %q is not a committed snapshot: %w", k, errdefs.ErrInvalidArgument)
		}
		ids = append(ids, id)
		k = info.Parent
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids, nil
}

// useChain makes sure the composefs image of the committed snapshot
// parent's chain is mounted (building the image on its first use), and
// returns the parent's ID and the attributes of the mount's root.
// The caller holds s.mu.
func (s *Snapshotter) useChain(ctx context.Context, parent string) (string, rootAttrs, error) {
	var ids []string
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		ids, err = chain(ctx, parent)
		return err
	})
	if err != nil {
		return "", rootAttrs{}, err
	}
	id := ids[len(ids)-1]
	if err := s.mountChain(ctx, ids); err != nil {
		return "", rootAttrs{}, err
	}
	attrs, err := statRoot(s.chainPath(id))
	return id, attrs, err
}

// mountChain mounts the chain ids (bottom first) at chainPath of its top
// ID unless it is mounted there already.
func (s *Snapshotter) mountChain(ctx context.Context, ids []string) error {
	id := ids[len(ids)-1]
	target := s.chainPath(id)
	if mounted, err := isMounted(target); err != nil || mounted {
		return err
	}
	if _, err := s.repo.Resolve(refName(id)); err != nil {
		if !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("snapshotter: %w", err)
		}
		if err := s.buildChain(ctx, ids); err != nil {
			return err
		}
	}
	if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("snapshotter: %w", err)
	}
	_, err := s.repo.Mount(refName(id), target, cfsmount.Options{
		Method: cfsmount.Kernel,
		Verity: s.opts.Verity,
		// The mount is a lower directory of containers' overlays, which
		// decide about devices and setuid (MountOptions); under the
		// snapshotter's root (mode 0700) nobody else reaches it.
		AllowDevices: true,
		AllowSetuid:  true,
		Notice:       s.opts.Notice,
	})
	if err != nil {
		return fmt.Errorf("snapshotter: mounting the chain of snapshot %s: %w", id, err)
	}
	return nil
}

// buildChain stores the composefs image of the layers of ids merged, and
// names it after the top ID.
func (s *Snapshotter) buildChain(ctx context.Context, ids []string) error {
	prefix := oci.LayerStreamName("")
	diffIDs := make([]string, len(ids))
	for i, id := range ids {
		stream, _, err := s.repo.ResolveStreamRef(refName(id))
		if err != nil {
			return fmt.Errorf("snapshotter: the layer of snapshot %s: %w", id, err)
		}
		var ok bool
		if diffIDs[i], ok = strings.CutPrefix(stream, prefix); !ok {
			return fmt.Errorf("snapshotter: the layer of snapshot %s is the stream %q, not an OCI layer", id, stream)
		}
	}
	if _, err := oci.MergeLayers(ctx, s.repo, diffIDs, refName(ids[len(ids)-1]), s.layers); err != nil {
		return fmt.Errorf("snapshotter: the image of snapshot %s: %w", ids[len(ids)-1], err)
	}
	return nil
}

// releaseChain unmounts the chain of the committed snapshot id when no
// active or view snapshot has it as parent any more. The caller holds
// s.mu.
func (s *Snapshotter) releaseChain(ctx context.Context, id string) {
	used, err := s.usedChains(ctx)
	if err != nil {
		s.notice(fmt.Sprintf("snapshotter: keeping the mount of snapshot %s: %v", id, err))
		return
	}
	if !used[id] {
		s.unmountChain(id)
	}
}

// unmountChain unmounts the chain mount of id, if it is mounted, and
// removes its mount point.
func (s *Snapshotter) unmountChain(id string) {
	target := s.chainPath(id)
	if mounted, err := isMounted(target); err == nil && mounted {
		if err := cfsmount.Unmount(target); err != nil {
			// Busy: containerd still has it open; detach it, the kernel
			// lets it go when the last user does.
			if err := cfsmount.UnmountLazy(target); err != nil {
				s.notice(fmt.Sprintf("snapshotter: %v", err))
				return
			}
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.notice(fmt.Sprintf("snapshotter: %v", err))
	}
}

// usedChains returns the IDs of the committed snapshots that are the
// parent of an active or view snapshot.
func (s *Snapshotter) usedChains(ctx context.Context) (map[string]bool, error) {
	used := make(map[string]bool)
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		return storage.WalkInfo(ctx, func(ctx context.Context, info snapshots.Info) error {
			if info.Kind == snapshots.KindCommitted || info.Parent == "" {
				return nil
			}
			id, _, _, err := storage.GetInfo(ctx, info.Parent)
			if err != nil {
				return err
			}
			used[id] = true
			return nil
		})
	})
	return used, err
}

// isMounted reports whether something is mounted at dir (its device is
// not its parent's); false when dir does not exist.
func isMounted(dir string) (bool, error) {
	var st, pst syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("snapshotter: %s: %w", dir, err)
	}
	if err := syscall.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, fmt.Errorf("snapshotter: %s: %w", filepath.Dir(dir), err)
	}
	return st.Dev != pst.Dev, nil
}

// statRoot returns the attributes of the directory dir.
func statRoot(dir string) (rootAttrs, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return rootAttrs{}, fmt.Errorf("snapshotter: %s: %w", dir, err)
	}
	return rootAttrs{mode: st.Mode, uid: st.Uid, gid: st.Gid, mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}, nil
}
