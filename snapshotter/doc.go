// Package snapshotter is a containerd snapshotter over a gocfs
// repository: containerd's snapshots.Snapshotter (and Cleaner), served to
// containerd as a proxy snapshotter plugin on a Unix socket by [Serve]
// (gocfs snapshotter --address SOCKET --root DIR).
//
// Usage:
//
//	sn, err := snapshotter.New(ctx, "/var/lib/gocfs-snapshotter", snapshotter.Options{})
//	if err != nil {
//		return err
//	}
//	defer sn.Close()
//	return snapshotter.Serve(ctx, sn, "/run/gocfs-snapshotter.sock")
//
// # What is where
//
// Under the root directory:
//
//	metadata.db        containerd's snapshot metadata (storage.MetaStore, bbolt)
//	repo/              a gocfs repository: objects, layers (split streams), chain images
//	snapshots/ID/fs    the upper directory of the active or view snapshot ID
//	snapshots/ID/work  overlayfs's work directory of an active snapshot with a parent
//	mounts/ID          the composefs mount of the chain of committed snapshot ID
//
// # How containerd's snapshots map to composefs
//
// An active snapshot is a plain directory (its upper directory). When
// containerd unpacks a layer it prepares an active snapshot, applies the
// layer into its mounts (containerd's applier writes straight into the
// upper directory of an overlay mount: whiteouts as character devices
// 0/0, opaque directories as trusted.overlay.opaque "y"), and commits it.
// Commit turns the upper directory back into an OCI layer (whiteouts and
// opaque directories as OCI's .wh. members) and imports it with
// oci.ImportLayer: every file becomes an object of the repository, stored
// once however many layers and images have it, and the layer a split
// stream, named streams/refs/snapshotter/ID. The upper directory is then
// removed: a committed snapshot is its layer in the repository.
//
// A snapshot made on a committed parent needs the parent's whole chain:
// the chain's layers are merged with oci.MergeLayers, as oci.Pull merges
// an image's layers, into one composefs image (images/refs/snapshotter/ID,
// built on first use and kept), which is mounted with the kernel at
// mounts/ID while snapshots stand on it. An active snapshot's mount is an
// overlay whose lower directory is that composefs mount, with its own
// upper and work directories; a view is a read-only bind mount of it.
// Both are mounts containerd's mount package can make itself (overlay and
// bind); only the snapshotter mounts composefs. With no parent, an active
// snapshot or a view is a bind mount of its upper directory, as
// containerd's overlayfs snapshotter does.
//
// The chain mounts check fs-verity as Options.Verity says; they allow
// devices and setuid files, since they are reached only through the
// containers' overlays (whose options, Options.MountOptions such as
// "nodev", decide) and the root directory is mode 0700.
//
// # Crash safety
//
// Each step is made durable before the next depends on it: the layer and
// its name are written in one repository transaction before the metadata
// records the commit; a snapshot's directory is made under a temporary
// name and renamed to its ID in the metadata transaction that records
// it; the metadata forgets a snapshot before its directories and names
// are removed. [New] and [Snapshotter.Cleanup] reconcile the rest with
// the metadata: directories of snapshots that are not active, names of
// snapshots that are gone, chain mounts nobody stands on are removed,
// chain mounts active snapshots stand on are mounted again, and the
// repository's garbage collection removes the objects no name keeps.
package snapshotter
