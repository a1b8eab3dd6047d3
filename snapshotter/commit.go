package snapshotter

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/continuity/fs"
	"github.com/containerd/errdefs"
)

// Commit turns the active snapshot key into the committed snapshot name:
// its upper directory is imported into the repository as a layer (files
// as objects, shared with every other layer; the layer as a split
// stream named after the snapshot's ID), the metadata records the
// commit, and the upper directory is removed. Killed before the metadata
// is written, the snapshot is still active and Commit can be called
// again; after, Cleanup removes the upper directory.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	id, parentID, err := s.activeSnapshot(ctx, key, opts)
	if err != nil {
		return err
	}
	lower := implicitRoot
	if parentID != "" {
		if lower, err = statRoot(s.chainPath(parentID)); err != nil {
			return err
		}
	}
	usage, err := fs.DiskUsage(ctx, s.upperPath(id))
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if _, err := importUpper(ctx, s.repo, s.upperPath(id), lower, refName(id)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		_, err := storage.CommitActive(ctx, key, name, snapshots.Usage(usage), opts...)
		return err
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(s.snapshotPath(id)); err != nil {
		s.notice(fmt.Sprintf("snapshotter: %v (Cleanup removes it)", err))
	}
	if parentID != "" {
		s.releaseChain(ctx, parentID)
	}
	return nil
}

// activeSnapshot returns the ID of the active snapshot key and of its
// parent ("" for none), and drops any chain image a snapshot with the
// same ID had (the metadata was made anew). A commit that would give the
// snapshot a parent it was not made on is refused: its layer was made
// against the snapshot's own parent.
func (s *Snapshotter) activeSnapshot(ctx context.Context, key string, opts []snapshots.Opt) (id, parentID string, err error) {
	var base snapshots.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return "", "", err
		}
	}
	var sn storage.Snapshot
	err = s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		if sn, err = storage.GetSnapshot(ctx, key); err != nil {
			return err
		}
		if sn.Kind != snapshots.KindActive {
			return fmt.Errorf("snapshotter: snapshot %q is a view, not active: %w", key, errdefs.ErrFailedPrecondition)
		}
		if base.Parent != "" && len(sn.ParentIDs) == 0 {
			return fmt.Errorf("snapshotter: committing %q onto a new parent: %w", key, errdefs.ErrNotImplemented)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	if len(sn.ParentIDs) > 0 {
		parentID = sn.ParentIDs[0]
	}
	return sn.ID, parentID, s.dropChainImage(ctx, sn.ID)
}
