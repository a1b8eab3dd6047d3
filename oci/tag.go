package oci

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// Tag names the stored OCI image whose manifest has the digest
// manifestDigest (sha256:HEX) name, as cfsctl oci tag does:
// streams/refs/oci/ENCODED(name) points at the manifest's stream, which
// must be in the repository. A tag already called name is replaced.
func Tag(r *repo.Repo, manifestDigest, name string) error {
	h, err := v1.NewHash(manifestDigest)
	if err != nil {
		return fmt.Errorf("oci: manifest digest %q: %w", manifestDigest, err)
	}
	if strings.Contains(name, "@") {
		return fmt.Errorf("oci: tag %q: a tag name must not contain '@'", name)
	}
	if err := repo.CheckRefName(name); err != nil {
		return fmt.Errorf("oci: tag %q: %w", name, err)
	}
	stream := ManifestStreamName(h.String())
	return r.Update(context.Background(), func(tx *repo.Tx) error {
		// Under the repository lock: gc can't remove the manifest now.
		if _, err := r.ResolveStream(stream); err != nil {
			return fmt.Errorf("oci: no OCI image with manifest %s: %w", h, err)
		}
		return tx.SetStreamRef(tagRef(name), stream)
	})
}

// Untag removes the tag name of an OCI image, as cfsctl oci untag does;
// it is Remove, which also removes images/refs/NAME where it names the
// image's composefs image.
func Untag(r *repo.Repo, name string) error { return Remove(r, name) }

// ComputeID returns the ID (fs-verity digest) of the composefs image of
// the OCI image called name, computed from its stored layers by
// composefs-rs's rules (cfsctl oci compute-id, default options) in the
// repository's algorithm and EROFS format, storing nothing. It is
// ComputeIDWith with the zero Rules.
func ComputeID(ctx context.Context, r *repo.Repo, name string) (digest.Digest, error) {
	return ComputeIDWith(ctx, r, name, Rules{})
}

// ComputeIDWith is ComputeID with the given rules (cfsctl oci compute-id
// --xattrs). For an image pulled by this version of gocfs, with the zero
// Rules, it is the image pull made and the configuration's
// composefs.image.v1 names.
func ComputeIDWith(ctx context.Context, r *repo.Repo, name string, rules Rules) (digest.Digest, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return digest.Digest{}, err
	}
	defer unlock()
	rec, err := lookupRecord(r, name)
	if err != nil {
		return digest.Digest{}, err
	}
	root, err := recordTree(r, rec, rules)
	if err != nil {
		return digest.Digest{}, err
	}
	return r.TreeImageID(root)
}

// ImageTree returns the root file system of the OCI image called name,
// merged from its stored layers by rules (cfsctl oci dump --xattrs): the
// tree ComputeIDWith makes its image of. Its regular files name their
// objects by payload.
func ImageTree(ctx context.Context, r *repo.Repo, name string, rules Rules) (*tree.Node, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := lookupRecord(r, name)
	if err != nil {
		return nil, err
	}
	return recordTree(r, rec, rules)
}
