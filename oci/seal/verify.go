package seal

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/oci"
)

// Mode is what a verification requires of an image.
type Mode int

// The verification modes.
const (
	// VerifyNone checks nothing beyond the OCI digests.
	VerifyNone Mode = iota
	// VerifySealed requires the composefs digests (inline annotations,
	// or a composefs artifact) and that the locally generated EROFS has
	// exactly the sealed merged digest.
	VerifySealed
	// VerifySigned requires, besides, signatures of the manifest (artifact
	// mode), config and merged digests made with the certificate's key.
	VerifySigned
)

// ParseMode parses "none" (or ""), "sealed" or "signed".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "none":
		return VerifyNone, nil
	case "sealed":
		return VerifySealed, nil
	case "signed":
		return VerifySigned, nil
	}
	return 0, fmt.Errorf("seal: verification %q is not none, sealed or signed", s)
}

// String returns the mode's name.
func (m Mode) String() string {
	return [...]string{"none", "sealed", "signed"}[m]
}

// Local is what a verification compares the sealed digests with: the
// image as the repository has it or is about to store it.
type Local struct {
	Algorithm Algorithm
	// Manifest and Config are the raw JSON bytes; ManifestDigest the
	// manifest's OCI digest.
	Manifest, Config []byte
	ManifestDigest   string
	// Merged returns the digest of the locally generated merged EROFS,
	// Layers those of each layer's.
	Merged func() (digest.Digest, error)
	Layers func() ([]digest.Digest, error)
}

// Result says what a verification checked.
type Result struct {
	Mode      Mode
	Algorithm Algorithm
	// Merged is the merged EROFS digest, as sealed and as generated.
	Merged digest.Digest
	// Source is "inline" or "artifact sha256:…".
	Source string
	// Signatures are the verified signatures, by role.
	Signatures map[Role][]byte

	artifact *FetchedArtifact // the artifact verified against, if any
}

// compare checks one digest: want is sealed, got computed.
func compare(what string, a Algorithm, want, got digest.Digest) error {
	if want != got {
		return fmt.Errorf("%w: %s: sealed %s:%s, the image gives %s", ErrMismatch, what, a, want.Hex(), got.Hex())
	}
	return nil
}

// CheckSealed compares s, the sealed digests (ReadInline's, or an
// artifact's), with the local image: each layer's EROFS where sealed
// (first: a swapped layer is named), the merged EROFS (required), then
// the config and manifest where sealed.
func CheckSealed(l *Local, s *Sealed) error {
	if s.Merged.IsZero() {
		return fmt.Errorf("%w: no %s digest", ErrNotSealed, Key(RoleMerged, s.Algorithm))
	}
	if s.Algorithm != l.Algorithm {
		return fmt.Errorf("%w: sealed with %s, the repository makes %s images", ErrUnsupported, s.Algorithm, l.Algorithm)
	}
	if err := checkLayers(l, s); err != nil {
		return err
	}
	merged, err := l.Merged()
	if err != nil {
		return err
	}
	if err := compare("merged EROFS", s.Algorithm, s.Merged, merged); err != nil {
		return err
	}
	if !s.Config.IsZero() {
		if err := compare("config", s.Algorithm, s.Config, BytesDigest(l.Config, s.Algorithm.Hash)); err != nil {
			return err
		}
	}
	if !s.Manifest.IsZero() {
		return compare("manifest "+l.ManifestDigest, s.Algorithm, s.Manifest, BytesDigest(l.Manifest, s.Algorithm.Hash))
	}
	return nil
}

// checkLayers compares the sealed per-layer digests, if any.
func checkLayers(l *Local, s *Sealed) error {
	if s.Layers == nil {
		return nil
	}
	layers, err := l.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(s.Layers) {
		return fmt.Errorf("%w: %d layers sealed, the image has %d", ErrMismatch, len(s.Layers), len(layers))
	}
	for i := range layers {
		if s.Layers[i].IsZero() {
			continue
		}
		if err := compare(fmt.Sprintf("layer %d EROFS", i), s.Algorithm, s.Layers[i], layers[i]); err != nil {
			return err
		}
	}
	return nil
}

// CheckSignatures verifies that s has a signature for each role in
// roles, made by cert over the role's sealed digest.
func CheckSignatures(s *Sealed, cert *x509.Certificate, roles ...Role) error {
	for _, role := range roles {
		sig, ok := s.Signatures[role]
		if !ok {
			return fmt.Errorf("%w: no signature of the %s digest (%s)", ErrSignature, role, SigKey(role, s.Algorithm))
		}
		d := s.digest(role)
		if d.IsZero() {
			return fmt.Errorf("%w: a signature of the %s digest, but no digest", ErrMalformed, role)
		}
		if err := VerifySignature(sig, d, cert); err != nil {
			return fmt.Errorf("%s signature: %w", role, err)
		}
	}
	return nil
}

func (s *Sealed) digest(role Role) digest.Digest {
	switch role {
	case RoleManifest:
		return s.Manifest
	case RoleConfig:
		return s.Config
	case RoleMerged:
		return s.Merged
	}
	return digest.Digest{}
}

// signedRoles are the roles a signed image must have signatures of:
// inline mode cannot sign its own manifest.
func signedRoles(inline bool) []Role {
	if inline {
		return []Role{RoleConfig, RoleMerged}
	}
	return []Role{RoleManifest, RoleConfig, RoleMerged}
}

// VerifyInline verifies the local image against the inline annotations
// of its own manifest: the digests in mode VerifySealed, and in mode
// VerifySigned the signatures too (config and merged), against cert.
func VerifyInline(l *Local, mode Mode, cert *x509.Certificate) (*Result, error) {
	s, err := ReadInline(l.Manifest, l.Algorithm)
	if err != nil {
		return nil, err
	}
	for _, role := range []Role{RoleMerged, RoleConfig} {
		if s.digest(role).IsZero() {
			return nil, fmt.Errorf("%w: the manifest %s has no %s annotation", ErrNotSealed, l.ManifestDigest, Key(role, l.Algorithm))
		}
	}
	if err := CheckSealed(l, s); err != nil {
		return nil, err
	}
	res := &Result{Mode: mode, Algorithm: s.Algorithm, Merged: s.Merged, Source: "inline"}
	if mode == VerifySigned {
		if err := CheckSignatures(s, cert, signedRoles(true)...); err != nil {
			return nil, err
		}
		res.Signatures = s.Signatures
	}
	return res, nil
}

// FetchedArtifact is a composefs artifact with its signature blobs, each
// checked against its descriptor.
type FetchedArtifact struct {
	Digest string // the artifact manifest's digest
	Parsed *ParsedArtifact
	Blobs  map[Role][]byte
	// Raw is the artifact as it came, to be stored beside the image.
	Raw *oci.Referrer
}

// artifactFrom parses a stored or fetched artifact whose blobs are all
// there (checked against their digests by the caller).
func artifactFrom(ref *oci.Referrer, subject string) (*FetchedArtifact, error) {
	p, err := ParseArtifact(ref.Manifest, subject)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", ref.Digest, err)
	}
	a := &FetchedArtifact{Digest: ref.Digest, Parsed: p, Blobs: map[Role][]byte{}, Raw: ref}
	for _, e := range p.Entries {
		b, ok := ref.Blobs[e.Signature.Digest.String()]
		if !ok {
			return nil, fmt.Errorf("%w: artifact %s: no %s signature blob %s", ErrMalformed, ref.Digest, e.Role, e.Signature.Digest)
		}
		a.Blobs[e.Role] = b
	}
	return a, nil
}

// VerifyArtifact verifies the local image against a composefs artifact:
// each digest it gives (manifest, config, merged EROFS) must be the
// local one, and each signature must be cert's over it. The boot variant
// (merged.bootable), which gocfs does not generate, is not checked.
func VerifyArtifact(l *Local, art *FetchedArtifact, cert *x509.Certificate) (*Result, error) {
	p := art.Parsed
	if p.Subject.Digest.String() != l.ManifestDigest {
		return nil, fmt.Errorf("%w: artifact %s: its subject is %s, the image's manifest %s", ErrMismatch, art.Digest, p.Subject.Digest, l.ManifestDigest)
	}
	s := &Sealed{Algorithm: p.Algorithm, Signatures: map[Role][]byte{}}
	for _, e := range p.Entries {
		switch e.Role {
		case RoleManifest:
			s.Manifest = e.Digest
		case RoleConfig:
			s.Config = e.Digest
		case RoleMerged:
			s.Merged = e.Digest
		default:
			continue
		}
		s.Signatures[e.Role] = art.Blobs[e.Role]
	}
	if err := CheckSealed(l, s); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", art.Digest, err)
	}
	if err := CheckSignatures(s, cert, signedRoles(false)...); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", art.Digest, err)
	}
	return &Result{Mode: VerifySigned, Algorithm: s.Algorithm, Merged: s.Merged, Source: "artifact " + art.Digest, Signatures: s.Signatures, artifact: art}, nil
}

// VerifyArtifacts tries each artifact in turn and returns the first
// verification that succeeds; when none does, the error says why each
// failed, and ErrNotSealed when there is none.
func VerifyArtifacts(l *Local, arts []*FetchedArtifact, cert *x509.Certificate) (*Result, error) {
	if len(arts) == 0 {
		return nil, fmt.Errorf("%w: no composefs artifact (%s) refers to the manifest %s", ErrNotSealed, ArtifactType, l.ManifestDigest)
	}
	var errs []string
	var first error
	for _, a := range arts {
		res, err := VerifyArtifact(l, a, cert)
		if err == nil {
			return res, nil
		}
		if first == nil {
			first = err
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 1 {
		return nil, first
	}
	return nil, fmt.Errorf("%w (and %d more artifacts: %s)", first, len(errs)-1, strings.Join(errs[1:], "; "))
}
