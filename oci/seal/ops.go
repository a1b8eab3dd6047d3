package seal

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// SealResult says what Seal and Sign did.
type SealResult struct {
	// Name is the image's name in the repository.
	Name string
	// Digests are the image's composefs digests.
	Digests *Digests
	// Manifest is the digest of the manifest written (Seal: the sealed
	// manifest; Sign: the artifact's).
	Manifest string
}

// Seal pulls the image src into the repository (every blob checked), computes
// its composefs digests and writes to dest (a registry reference or an OCI
// layout "oci:DIR[:TAG]") the image sealed in inline mode: the same
// config and layers (copied from src, not rewritten), its manifest with
// the digest annotations (and, with a signer, the config and merged
// signatures). src must be a registry reference or an OCI layout.
func Seal(ctx context.Context, r *repo.Repo, src, dest string, pull oci.PullOptions, signer Signer) (*SealResult, error) {
	res, err := oci.Pull(ctx, r, src, pull)
	if err != nil {
		return nil, err
	}
	d, err := Compute(ctx, r, res.Name, Algorithm{})
	if err != nil {
		return nil, err
	}
	manifest, _, _, err := oci.Manifest(r, res.Name)
	if err != nil {
		return nil, err
	}
	raw, err := Inline(manifest, d, signer)
	if err != nil {
		return nil, err
	}
	rm := remoteFrom(&pull)
	h, err := v1.NewHash(res.ManifestDigest)
	if err != nil {
		return nil, err
	}
	img, err := rm.openImage(ctx, src, h)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	sealed := &sealedImage{Image: img, raw: raw, m: m}
	if err := rm.WriteImage(ctx, dest, sealed); err != nil {
		return nil, err
	}
	sh, _ := sealed.Digest()
	return &SealResult{Name: res.Name, Digests: d, Manifest: sh.String()}, nil
}

// Sign pulls the registry image ref into the repository, computes its
// composefs digests, signs the manifest, config and merged EROFS digests
// with signer, and pushes the composefs artifact as a referrer of the
// image (artifact mode; the image is not touched).
func Sign(ctx context.Context, r *repo.Repo, ref string, pull oci.PullOptions, signer Signer) (*SealResult, error) {
	if kind, _ := oci.ParseSource(ref); kind != oci.SourceRegistry {
		return nil, fmt.Errorf("seal: %s: artifacts are pushed to registries only", ref)
	}
	rm := remoteFrom(&pull)
	src, err := pinned(ctx, rm, ref, &pull)
	if err != nil {
		return nil, err
	}
	res, err := oci.Pull(ctx, r, src.String(), pull)
	if err != nil {
		return nil, err
	}
	d, err := Compute(ctx, r, res.Name, Algorithm{})
	if err != nil {
		return nil, err
	}
	manifest, _, rec, err := oci.Manifest(r, res.Name)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(rec.ManifestDigest)
	if err != nil {
		return nil, err
	}
	subject := v1.Descriptor{MediaType: types.MediaType(rec.MediaType), Digest: h, Size: int64(len(manifest))}
	art, err := BuildArtifact(d, subject, signer)
	if err != nil {
		return nil, err
	}
	dst, err := rm.PushArtifact(ctx, ref, art)
	if err != nil {
		return nil, err
	}
	return &SealResult{Name: res.Name, Digests: d, Manifest: dst.DigestStr()}, nil
}

// pinned resolves a registry reference to its platform manifest's
// digest, so that the image pulled is the one the referrers were listed
// for; the pull keeps the reference's name.
func pinned(ctx context.Context, rm Remote, ref string, pull *oci.PullOptions) (name.Digest, error) {
	_, rest := oci.ParseSource(ref)
	d, err := rm.Resolve(ctx, rest)
	if err != nil {
		return name.Digest{}, err
	}
	if pull.Name == "" {
		r, err := rm.parse(rest)
		if err != nil {
			return name.Digest{}, err
		}
		pull.Name = r.Name()
	}
	return d, nil
}

// PullOptions control a verified pull.
type PullOptions struct {
	oci.PullOptions
	// Mode is what the image must prove; Cert the certificate its
	// signatures must be made with (VerifySigned; optional otherwise).
	Mode Mode
	Cert *x509.Certificate
}

// Pull pulls src into the repository as oci.Pull does, and with a Mode
// verifies it before anything is named: the locally generated EROFS must
// have exactly the sealed merged digest (and the config, manifest and
// layers theirs, where sealed), and in VerifySigned the signatures must
// be Cert's. The sealing metadata comes from the manifest's inline
// annotations, or from the composefs artifacts that refer to the image
// in its registry (artifact mode; VerifySigned prefers them). A refused
// image leaves nothing named.
func Pull(ctx context.Context, r *repo.Repo, src string, opts PullOptions) (*oci.PullResult, *Result, error) {
	if opts.Mode == VerifyNone {
		res, err := oci.Pull(ctx, r, src, opts.PullOptions)
		return res, nil, err
	}
	if opts.Mode == VerifySigned && opts.Cert == nil {
		return nil, nil, errors.New("seal: verifying signatures needs a certificate")
	}
	var arts []*FetchedArtifact
	var bad []error
	if kind, _ := oci.ParseSource(src); kind == oci.SourceRegistry {
		rm := remoteFrom(&opts.PullOptions)
		d, err := pinned(ctx, rm, src, &opts.PullOptions)
		if err != nil {
			return nil, nil, err
		}
		src = d.String()
		if arts, bad, err = rm.FetchArtifacts(ctx, d); err != nil {
			return nil, nil, err
		}
	}
	var result *Result
	opts.Check = func(c *oci.Candidate) error {
		l := candidateLocal(r, c)
		var err error
		if result, err = verify(l, opts.Mode, opts.Cert, arts, bad); err != nil {
			return err
		}
		// The kernel checks the signatures too, where it can: on the
		// composefs image, and on the manifest's and config's objects.
		for role, sig := range result.Signatures {
			switch role {
			case RoleMerged:
				c.SetSignature(result.Merged, sig)
			case RoleManifest:
				c.SetSignature(BytesDigest(c.Manifest, l.Algorithm.Hash), sig)
			case RoleConfig:
				c.SetSignature(BytesDigest(c.Config, l.Algorithm.Hash), sig)
			}
		}
		return nil
	}
	res, err := oci.Pull(ctx, r, src, opts.PullOptions)
	if err != nil {
		return nil, nil, err
	}
	if result.artifact != nil {
		// Kept beside the image, for mount --verify and offline checks.
		if err := oci.StoreReferrer(ctx, r, res.ManifestDigest, result.artifact.Raw); err != nil {
			return res, result, fmt.Errorf("seal: %s was verified and stored, but not its artifact %s: %w", res.Name, result.artifact.Digest, err)
		}
	}
	return res, result, nil
}

// candidateLocal is the image a pull is about to store, for a
// verification.
func candidateLocal(r *repo.Repo, c *oci.Candidate) *Local {
	return &Local{
		Algorithm: AlgorithmFor(r.Algorithm()),
		Manifest:  c.Manifest, Config: c.Config, ManifestDigest: c.ManifestDigest,
		Merged: c.ImageID, Layers: c.LayerImageIDs,
	}
}

// verify chooses the sealing metadata and verifies l against it: inline
// annotations, or artifacts (preferred for VerifySigned, used for
// VerifySealed when the manifest has no annotations).
func verify(l *Local, mode Mode, cert *x509.Certificate, arts []*FetchedArtifact, bad []error) (*Result, error) {
	inline, err := ReadInline(l.Manifest, l.Algorithm)
	if err != nil {
		return nil, err
	}
	useArtifacts := len(arts) > 0 && (mode == VerifySigned || inline.Merged.IsZero())
	switch {
	case useArtifacts && mode == VerifySigned:
		return VerifyArtifacts(l, arts, cert)
	case useArtifacts:
		return verifyArtifactDigests(l, arts, cert)
	case mode == VerifySigned && len(inline.Signatures) == 0:
		return nil, notSealed(l, bad, "no composefs artifact (%s) refers to the manifest %s, and it has no inline signatures", ArtifactType, l.ManifestDigest)
	case inline.Merged.IsZero():
		return nil, notSealed(l, bad, "the manifest %s has no %s annotation and no composefs artifact refers to it", l.ManifestDigest, Key(RoleMerged, l.Algorithm))
	}
	res, err := VerifyInline(l, mode, cert)
	if err == nil && mode == VerifySealed && cert != nil && len(inline.Signatures) > 0 {
		if err := CheckSignatures(inline, cert, signedRoles(true)...); err != nil {
			return nil, err
		}
		res.Signatures = inline.Signatures
	}
	return res, err
}

// verifyArtifactDigests checks only the digests of the artifacts (and
// their signatures when a certificate is given).
func verifyArtifactDigests(l *Local, arts []*FetchedArtifact, cert *x509.Certificate) (*Result, error) {
	if cert != nil {
		return VerifyArtifacts(l, arts, cert)
	}
	var first error
	for _, a := range arts {
		s := &Sealed{Algorithm: a.Parsed.Algorithm}
		for _, e := range a.Parsed.Entries {
			switch e.Role {
			case RoleManifest:
				s.Manifest = e.Digest
			case RoleConfig:
				s.Config = e.Digest
			case RoleMerged:
				s.Merged = e.Digest
			}
		}
		err := CheckSealed(l, s)
		if err == nil {
			return &Result{Mode: VerifySealed, Algorithm: s.Algorithm, Merged: s.Merged, Source: "artifact " + a.Digest}, nil
		}
		if first == nil {
			first = fmt.Errorf("artifact %s: %w", a.Digest, err)
		}
	}
	return nil, first
}

// notSealed is ErrNotSealed with the reasons artifacts were left out.
func notSealed(l *Local, bad []error, format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{ErrNotSealed}, args...)...)
	if len(bad) > 0 {
		return fmt.Errorf("%w (artifacts left out: %w)", err, errors.Join(bad...))
	}
	return err
}

// MountOptions control a verified mount.
type MountOptions struct {
	Mount mount.Options
	// Mode and Cert are as for Pull.
	Mode Mode
	Cert *x509.Certificate
	// Remote and Source, when Source is set, name the registry image
	// whose composefs artifacts are used (artifact mode); otherwise the
	// stored manifest's inline annotations are.
	Remote Remote
	Source string
}

// Mount mounts the OCI image called name, as oci.Mount does, after
// verifying it as Pull does: its composefs image, generated again from
// the stored layers, must have the sealed merged digest, and the image
// mounted is that one.
func Mount(ctx context.Context, r *repo.Repo, name, target string, opts MountOptions) (*mounter.Mounted, *Result, error) {
	if opts.Mode == VerifyNone {
		m, err := oci.Mount(ctx, r, name, target, opts.Mount)
		return m, nil, err
	}
	l, err := storedLocal(ctx, r, name)
	if err != nil {
		return nil, nil, err
	}
	arts, bad, err := mountArtifacts(ctx, r, l.ManifestDigest, &opts)
	if err != nil {
		return nil, nil, err
	}
	res, err := verify(l, opts.Mode, opts.Cert, arts, bad)
	if err != nil {
		return nil, nil, fmt.Errorf("seal: %s: %w", name, err)
	}
	img, err := oci.EnsureImage(ctx, r, name)
	if err != nil {
		return nil, nil, err
	}
	if img != res.Merged.Hex() {
		return nil, nil, fmt.Errorf("%w: %s: the stored image is %s, the sealed %s", ErrMismatch, name, img, res.Merged.Hex())
	}
	m, err := r.Mount(img, target, opts.Mount)
	return m, res, err
}

// mountArtifacts returns the composefs artifacts of the image with
// manifest digest subject: those of opts.Source's registry when it is
// set, else those stored beside the image (by a verified pull).
func mountArtifacts(ctx context.Context, r *repo.Repo, subject string, opts *MountOptions) ([]*FetchedArtifact, []error, error) {
	if opts.Source != "" {
		ref, err := opts.Remote.parse(opts.Source)
		if err != nil {
			return nil, nil, err
		}
		return opts.Remote.FetchArtifacts(ctx, ref.Context().Digest(subject))
	}
	stored, err := oci.Referrers(r, subject)
	if err != nil {
		return nil, nil, err
	}
	var arts []*FetchedArtifact
	var bad []error
	for _, s := range stored {
		m, err := v1.ParseManifest(bytes.NewReader(s.Manifest))
		if err != nil || m.ArtifactType != ArtifactType {
			continue // another kind of referrer
		}
		a, err := artifactFrom(s, subject)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		arts = append(arts, a)
	}
	return arts, bad, nil
}

// storedLocal is a stored image, for a verification: its digests are
// computed again from the stored layers.
func storedLocal(ctx context.Context, r *repo.Repo, name string) (*Local, error) {
	manifest, config, rec, err := oci.Manifest(r, name)
	if err != nil {
		return nil, err
	}
	var merged digest.Digest
	var layers []digest.Digest
	compute := func() error {
		if merged.IsZero() {
			m, ls, err := imageIDs(ctx, r, name, AlgorithmFor(r.Algorithm()))
			if err != nil {
				return err
			}
			merged, layers = m, ls
		}
		return nil
	}
	return &Local{
		Algorithm: AlgorithmFor(r.Algorithm()),
		Manifest:  manifest, Config: config, ManifestDigest: rec.ManifestDigest,
		Merged: func() (digest.Digest, error) {
			err := compute()
			return merged, err
		},
		Layers: func() ([]digest.Digest, error) {
			err := compute()
			return layers, err
		},
	}, nil
}
