package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/errdefs"

	"github.com/gocfs/gocfs/repo"
)

// Remove removes the snapshot key, which no other snapshot may have as
// parent. The metadata goes first; what the snapshot had on disk (its
// directories, its repository names, the mount of its chain) is removed
// after, and whatever a crash leaves of it Cleanup removes. The objects
// themselves go at the next Cleanup (the repository's garbage collection).
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var id, parentID string
	var kind snapshots.Kind
	err := s.ms.WithTransaction(ctx, true, func(ctx context.Context) (err error) {
		_, info, _, err := storage.GetInfo(ctx, key)
		if err != nil {
			return err
		}
		if info.Parent != "" {
			if parentID, _, _, err = storage.GetInfo(ctx, info.Parent); err != nil {
				return err
			}
		}
		id, kind, err = storage.Remove(ctx, key)
		return err
	})
	if err != nil {
		return err
	}
	if kind == snapshots.KindCommitted {
		s.unmountChain(id)
		if err := s.dropNames(ctx, map[string]bool{id: true}); err != nil {
			s.notice(fmt.Sprintf("snapshotter: %v (Cleanup removes them)", err))
		}
		return nil
	}
	if err := os.RemoveAll(s.snapshotPath(id)); err != nil {
		s.notice(fmt.Sprintf("snapshotter: %v (Cleanup removes it)", err))
	}
	if parentID != "" {
		s.releaseChain(ctx, parentID)
	}
	return nil
}

// Cleanup removes what no snapshot uses: directories of snapshots that
// are gone (or committed), chain mounts no active snapshot stands on,
// repository names of snapshots that are gone, and then, with the
// repository's garbage collection, the images, layers and objects that
// only those names kept. containerd calls it after its own garbage
// collection removed snapshots.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cleanup(ctx)
}

// reconcile brings the directories, mounts and repository names in line
// with the metadata after a start: Cleanup, and the chain mounts that
// active snapshots stand on mounted again.
func (s *Snapshotter) reconcile(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cleanup(ctx)
}

// state is what the metadata says exists.
type state struct {
	kinds  map[string]snapshots.Kind // by ID
	chains map[string][]string       // the chains active snapshots stand on, by top ID
}

// readState reads the snapshots' IDs and kinds, and the chains in use.
func (s *Snapshotter) readState(ctx context.Context) (*state, error) {
	st := &state{kinds: make(map[string]snapshots.Kind), chains: make(map[string][]string)}
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		ids, err := storage.IDMap(ctx)
		if errdefs.IsNotFound(err) {
			return nil // a new store: nothing recorded yet
		}
		if err != nil {
			return err
		}
		for id, key := range ids {
			_, info, _, err := storage.GetInfo(ctx, key)
			if err != nil {
				return err
			}
			st.kinds[id] = info.Kind
			if info.Kind == snapshots.KindCommitted || info.Parent == "" {
				continue
			}
			c, err := chain(ctx, info.Parent)
			if err != nil {
				return err
			}
			st.chains[c[len(c)-1]] = c
		}
		return nil
	})
	return st, err
}

// cleanup does Cleanup's work; the caller holds s.mu.
func (s *Snapshotter) cleanup(ctx context.Context) error {
	st, err := s.readState(ctx)
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, s.removeDirs(st))
	errs = append(errs, s.fixMounts(ctx, st))
	gone := make(map[string]bool)
	names, err := s.names()
	errs = append(errs, err)
	for _, id := range names {
		if _, ok := st.kinds[id]; !ok {
			gone[id] = true
		}
	}
	errs = append(errs, s.dropNames(ctx, gone))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := s.repo.GC(ctx, repo.GCOptions{}); err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	return nil
}

// removeDirs removes the directories of snapshots that are not active or
// views (gone, committed, or never recorded).
func (s *Snapshotter) removeDirs(st *state) error {
	entries, err := os.ReadDir(filepath.Join(s.root, snapshotsDir))
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if k, ok := st.kinds[e.Name()]; ok && k != snapshots.KindCommitted {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(s.root, snapshotsDir, e.Name())))
	}
	return errors.Join(errs...)
}

// fixMounts unmounts the chains no active snapshot stands on and mounts
// those that are in use but not mounted.
func (s *Snapshotter) fixMounts(ctx context.Context, st *state) error {
	entries, err := os.ReadDir(filepath.Join(s.root, mountsDir))
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	for _, e := range entries {
		if st.chains[e.Name()] == nil {
			s.unmountChain(e.Name())
		}
	}
	var errs []error
	for _, ids := range st.chains {
		errs = append(errs, s.mountChain(ctx, ids))
	}
	return errors.Join(errs...)
}

// names returns the IDs that have a layer or an image name in the
// repository.
func (s *Snapshotter) names() ([]string, error) {
	var ids []string
	streams, err := s.repo.StreamRefs(strings.TrimSuffix(refPrefix, "/"))
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	for _, n := range streams {
		ids = append(ids, strings.TrimPrefix(n, refPrefix))
	}
	refs, err := s.repo.Refs()
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	for _, r := range refs {
		if id, ok := strings.CutPrefix(r.Name, refPrefix); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// dropNames removes the repository names (layer and chain image) of the
// snapshot IDs ids, those that exist.
func (s *Snapshotter) dropNames(ctx context.Context, ids map[string]bool) error {
	if len(ids) == 0 {
		return nil
	}
	return s.repo.Update(ctx, func(tx *repo.Tx) error {
		for id := range ids {
			if _, _, err := s.repo.ResolveStreamRef(refName(id)); !errors.Is(err, repo.ErrNotFound) {
				if err := tx.RemoveStreamRef(refName(id)); err != nil {
					return err
				}
			}
			if _, err := s.repo.ResolveRef(refName(id)); !errors.Is(err, repo.ErrNotFound) {
				if err := tx.RemoveImageRef(refName(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// dropChainImage removes the chain image name of id, if there is one.
func (s *Snapshotter) dropChainImage(ctx context.Context, id string) error {
	if _, err := s.repo.ResolveRef(refName(id)); errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	return s.repo.Update(ctx, func(tx *repo.Tx) error { return tx.RemoveImageRef(refName(id)) })
}
