package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
	cfsroot "github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// maxBootConfigRead bounds what the boot transformation reads of a file
// (/etc/selinux/config).
const maxBootConfigRead = 1 << 20

// BootableTree returns the tree of the bootable variant of the OCI image
// called name: its composefs tree with rootfs.TransformForBoot applied
// (composefs-rs's transform_for_boot: /boot and /sysroot emptied, SELinux
// labels removed; an image with an SELinux policy is refused).
func BootableTree(ctx context.Context, r *repo.Repo, name string) (*tree.Node, error) {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return nil, err
	}
	root, err := recordTree(r, rec, Rules{})
	if err != nil {
		return nil, err
	}
	read := func(path string, n *tree.Node) ([]byte, error) {
		f, err := r.Store().OpenPath(n.Payload)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxBootConfigRead))
	}
	if err := cfsroot.TransformForBoot(root, read); err != nil {
		return nil, fmt.Errorf("oci: %s: bootable image: %w", name, err)
	}
	return root, nil
}

// ComputeBootableID returns the digest of the bootable variant of the OCI
// image called name, in the repository's algorithm and EROFS format,
// storing nothing (cfsctl oci compute-id --bootable).
func ComputeBootableID(ctx context.Context, r *repo.Repo, name string) (digest.Digest, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return digest.Digest{}, err
	}
	defer unlock()
	root, err := BootableTree(ctx, r, name)
	if err != nil {
		return digest.Digest{}, err
	}
	return r.TreeImageID(root)
}
