package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/continuity/fs"

	cfsmount "github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// Options configure a Snapshotter. The zero value is usable.
type Options struct {
	// Verity is how the composefs mounts of committed chains check file
	// contents (the zero value, mount.VerityTry, checks what the file
	// system of the root can; mount.VerityRequire has overlayfs refuse
	// (EIO) every object without fs-verity).
	Verity cfsmount.VerityMode
	// MountOptions are added to the options of every overlay mount the
	// snapshotter returns for an active snapshot, e.g. "nodev".
	MountOptions []string
	// Notice receives what the snapshotter wants said but is no error.
	Notice func(string)
}

// Snapshotter is a containerd snapshotter (snapshots.Snapshotter and
// snapshots.Cleaner) over a gocfs repository. See the package
// documentation.
type Snapshotter struct {
	root string
	ms   *storage.MetaStore
	repo *repo.Repo
	opts Options
	// layers keeps the entries of the layers merged lately: the chains
	// of one image share all but their top layer.
	layers    *oci.LayerCache
	closeOnce sync.Once
	closeErr  error
	// mu serializes the changes of the snapshots' tree with the chain
	// mounts that follow from it (a mount stays while a snapshot uses it).
	mu sync.Mutex
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Cleaner     = (*Snapshotter)(nil)
)

// layerCacheEntries bounds the files of the layers the snapshotter keeps
// parsed in memory for merging chains (some hundred bytes each).
const layerCacheEntries = 1 << 20

// Names under the root directory.
const (
	metadataFile = "metadata.db"
	repoDir      = "repo"
	snapshotsDir = "snapshots" // ID/fs (upper), ID/work: active and view snapshots
	mountsDir    = "mounts"    // ID: the composefs mount of committed chain ID
)

// New opens the snapshotter whose state is under root (created if
// missing): its metadata, its repository, its snapshot and mount
// directories. What a killed snapshotter left half done is finished or
// undone here (see Cleanup), and the chain mounts that active snapshots
// use are mounted again if they are gone.
func New(ctx context.Context, root string, opts Options) (_ *Snapshotter, retErr error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("snapshotter: root %q: want an absolute path (containerd mounts the paths the snapshotter returns)", root)
	}
	for _, d := range []string{root, filepath.Join(root, snapshotsDir), filepath.Join(root, mountsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshotter: %w", err)
		}
	}
	r, err := repo.Init(filepath.Join(root, repoDir), repo.InitOptions{}, repo.Options{Notice: opts.Notice})
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	defer func() {
		if retErr != nil {
			r.Close()
		}
	}()
	ms, err := storage.NewMetaStore(filepath.Join(root, metadataFile))
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	s := &Snapshotter{root: root, ms: ms, repo: r, opts: opts, layers: oci.NewLayerCache(layerCacheEntries)}
	if err := s.reconcile(ctx); err != nil {
		ms.Close()
		return nil, err
	}
	return s, nil
}

// Repo returns the snapshotter's repository.
func (s *Snapshotter) Repo() *repo.Repo { return s.repo }

// Stat returns the info of the snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (info snapshots.Info, err error) {
	err = s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		_, info, _, err = storage.GetInfo(ctx, key)
		return err
	})
	return info, err
}

// Update changes the mutable fields (labels) of a snapshot's info.
func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (newInfo snapshots.Info, err error) {
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		newInfo, err = storage.UpdateInfo(ctx, info, fieldpaths...)
		return err
	})
	return newInfo, err
}

// Usage returns what a snapshot uses by itself: for an active snapshot,
// its upper directory now; for a committed one, what its upper directory
// used when it was committed (its content is in the repository since,
// shared with every other layer that has the same files).
func (s *Snapshotter) Usage(ctx context.Context, key string) (usage snapshots.Usage, err error) {
	var id string
	var info snapshots.Info
	err = s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		id, info, usage, err = storage.GetInfo(ctx, key)
		return err
	})
	if err != nil || info.Kind != snapshots.KindActive {
		return usage, err
	}
	du, err := fs.DiskUsage(ctx, s.upperPath(id))
	if err != nil {
		return snapshots.Usage{}, fmt.Errorf("snapshotter: %w", err)
	}
	return snapshots.Usage(du), nil
}

// Walk calls fn for each snapshot that matches the filters (containerd's
// filter syntax over name, parent, kind and labels).
func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	return s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		return storage.WalkInfo(ctx, fn, filters...)
	})
}

// Mounts returns the mounts of the active or view snapshot key again.
func (s *Snapshotter) Mounts(ctx context.Context, key string) (_ []mount.Mount, err error) {
	var sn storage.Snapshot
	err = s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		sn, err = storage.GetSnapshot(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.mounts(sn), nil
}

// Close closes the metadata and the repository; closing again does
// nothing. The chain mounts stay: containers may use them, and New finds
// them again.
func (s *Snapshotter) Close() error {
	s.closeOnce.Do(func() { s.closeErr = errors.Join(s.ms.Close(), s.repo.Close()) })
	return s.closeErr
}

func (s *Snapshotter) snapshotPath(id string) string {
	return filepath.Join(s.root, snapshotsDir, id)
}
func (s *Snapshotter) upperPath(id string) string { return filepath.Join(s.snapshotPath(id), "fs") }
func (s *Snapshotter) workPath(id string) string  { return filepath.Join(s.snapshotPath(id), "work") }
func (s *Snapshotter) chainPath(id string) string { return filepath.Join(s.root, mountsDir, id) }

func (s *Snapshotter) notice(msg string) {
	if s.opts.Notice != nil {
		s.opts.Notice(msg)
	}
}
