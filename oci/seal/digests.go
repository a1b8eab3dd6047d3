package seal

import (
	"context"
	"fmt"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// Digests are the composefs digests of an OCI image, all made with one
// algorithm: the specification's merged EROFS, per-layer EROFS,
// configuration and manifest digests.
type Digests struct {
	Algorithm Algorithm
	// ManifestDigest is the image manifest's OCI digest ("sha256:…"),
	// the subject of an artifact.
	ManifestDigest string
	// Manifest and Config are the fs-verity digests of the manifest's and
	// the configuration's JSON bytes, as the registry stores them.
	Manifest digest.Digest
	Config   digest.Digest
	// Merged is the fs-verity digest of the composefs EROFS of all the
	// layers merged; Layers, bottom first, of each layer's alone.
	Merged digest.Digest
	Layers []digest.Digest
}

// BytesDigest returns the fs-verity digest of data (a manifest or a
// configuration, as stored in the registry) made with alg.
func BytesDigest(data []byte, alg fsverity.Algorithm) digest.Digest {
	h := fsverity.New(alg)
	h.Write(data)
	return digest.MustNew(alg, h.Sum(nil))
}

// imageIDs is the one place that computes an image's EROFS digests (the
// merged image and each layer's) from the layers stored in the
// repository.
func imageIDs(ctx context.Context, r *repo.Repo, name string, a Algorithm) (merged digest.Digest, layers []digest.Digest, err error) {
	return oci.ImageIDsWith(ctx, r, name, a.Hash)
}

// Compute returns the composefs digests, made with a, of the OCI image
// called name in the repository, computed from its stored manifest,
// configuration and layers (nothing is stored); the zero Algorithm means
// the repository's. The EROFS digests of another algorithm than the
// repository's are those a repository of that algorithm would give the
// image (its files named by their digests in that algorithm): every
// file's content is read and hashed again. Verification compares the
// repository's algorithm only.
func Compute(ctx context.Context, r *repo.Repo, name string, a Algorithm) (*Digests, error) {
	if a == (Algorithm{}) {
		a = AlgorithmFor(r.Algorithm())
	}
	if err := a.Computable(); err != nil {
		return nil, err
	}
	manifest, config, rec, err := oci.Manifest(r, name)
	if err != nil {
		return nil, err
	}
	d := &Digests{
		Algorithm:      a,
		ManifestDigest: rec.ManifestDigest,
		Manifest:       BytesDigest(manifest, a.Hash),
		Config:         BytesDigest(config, a.Hash),
	}
	if d.Merged, d.Layers, err = imageIDs(ctx, r, name, a); err != nil {
		return nil, fmt.Errorf("seal: %s: %w", name, err)
	}
	return d, nil
}

// Entry is one digest of Digests, as Entries lists them.
type Entry struct {
	Role Role
	// Layer is the layer's index for RoleLayer.
	Layer  int
	Digest digest.Digest
}

// Key returns the entry's annotation key.
func (e Entry) Key(a Algorithm) string { return Key(e.Role, a) }

// Entries lists the digests: manifest (when set), config, merged, then
// each layer's, bottom first.
func (d *Digests) Entries() []Entry {
	var out []Entry
	if !d.Manifest.IsZero() {
		out = append(out, Entry{Role: RoleManifest, Digest: d.Manifest})
	}
	out = append(out, Entry{Role: RoleConfig, Digest: d.Config}, Entry{Role: RoleMerged, Digest: d.Merged})
	for i, l := range d.Layers {
		out = append(out, Entry{Role: RoleLayer, Layer: i, Digest: l})
	}
	return out
}
