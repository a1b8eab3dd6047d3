package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/digest"
)

// Artifact is a composefs metadata artifact (the specification's
// "composefs-meta-artifact"): an OCI image manifest whose artifactType is
// ArtifactType, with the empty config, one signature layer per signed
// digest, and the image manifest as subject.
type Artifact struct {
	// Manifest is the artifact's manifest, byte for byte.
	Manifest []byte
	// Blobs are the blobs it names, by OCI digest ("sha256:…"): the
	// empty config and the signatures.
	Blobs map[string][]byte
}

// artifactRoles are the roles an artifact's layers may have, in the
// order the specification's "Layer Ordering" requires.
var artifactRoles = []Role{RoleManifest, RoleConfig, RoleMerged, RoleMergedBootable}

// BuildArtifact makes the composefs artifact of an image: its manifest
// (subject, whose raw bytes have d.ManifestDigest), config and merged
// EROFS digests, each signed with signer, in the specification's order.
func BuildArtifact(d *Digests, subject v1.Descriptor, signer Signer) (*Artifact, error) {
	if subject.Digest.String() != d.ManifestDigest {
		return nil, fmt.Errorf("seal: the digests are of the manifest %s, not of %s", d.ManifestDigest, subject.Digest)
	}
	art := &Artifact{Blobs: map[string][]byte{EmptyConfigDigest: []byte(EmptyConfig)}}
	emptyDigest, err := v1.NewHash(EmptyConfigDigest)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: EmptyConfigMediaType, Digest: emptyDigest, Size: int64(len(EmptyConfig))},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	for _, e := range []Entry{{Role: RoleManifest, Digest: d.Manifest}, {Role: RoleConfig, Digest: d.Config}, {Role: RoleMerged, Digest: d.Merged}} {
		sig, err := signer.Sign(e.Digest)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(sig)
		h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
		art.Blobs[h.String()] = sig
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   SignatureMediaType,
			Digest:      h,
			Size:        int64(len(sig)),
			Annotations: map[string]string{Key(e.Role, d.Algorithm): e.Digest.Hex()},
		})
	}
	if art.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return art, nil
}

// ArtifactEntry is one layer of a composefs artifact: the digest it
// gives for a role, and the descriptor of its signature blob.
type ArtifactEntry struct {
	Role      Role
	Digest    digest.Digest
	Signature v1.Descriptor
}

// ParsedArtifact is what ParseArtifact reads of an artifact manifest.
type ParsedArtifact struct {
	Algorithm Algorithm
	Subject   v1.Descriptor
	Entries   []ArtifactEntry
}

// ParseArtifact reads a composefs artifact manifest, checking it against
// the specification: artifactType, a subject that is subjectDigest
// ("sha256:…"), signature layers each with one role-prefixed digest
// annotation, all of one algorithm, in the required order, with a merged
// EROFS digest, and, when there are signatures, the manifest's and the
// config's too. Errors wrap ErrMalformed.
func ParseArtifact(raw []byte, subjectDigest string) (*ParsedArtifact, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: artifact manifest: %w", ErrMalformed, err)
	}
	switch {
	case m.ArtifactType != ArtifactType:
		return nil, fmt.Errorf("%w: artifactType %q, not %s", ErrMalformed, m.ArtifactType, ArtifactType)
	case m.Config.Digest.String() != EmptyConfigDigest || m.Config.MediaType != EmptyConfigMediaType:
		return nil, fmt.Errorf("%w: the artifact's config is %s %s, not the empty descriptor", ErrMalformed, m.Config.MediaType, m.Config.Digest)
	case m.Subject == nil:
		return nil, fmt.Errorf("%w: the artifact has no subject", ErrMalformed)
	case m.Subject.Digest.String() != subjectDigest:
		return nil, fmt.Errorf("%w: the artifact's subject is %s, not the image's manifest %s", ErrMalformed, m.Subject.Digest, subjectDigest)
	}
	p := &ParsedArtifact{Subject: *m.Subject}
	next := 0 // index in artifactRoles of the next role allowed
	for i, l := range m.Layers {
		e, a, err := parseArtifactLayer(i, l)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			p.Algorithm = a
		} else if a != p.Algorithm {
			return nil, fmt.Errorf("%w: artifact layer %d uses %s, layer 0 %s (one algorithm per artifact)", ErrMalformed, i, a, p.Algorithm)
		}
		k := next
		for k < len(artifactRoles) && artifactRoles[k] != e.Role {
			k++
		}
		if k == len(artifactRoles) {
			return nil, fmt.Errorf("%w: artifact layer %d (%s) is out of order or repeated (want manifest, config, merged, merged.bootable)", ErrMalformed, i, e.Role)
		}
		next = k + 1
		p.Entries = append(p.Entries, e)
	}
	if p.Entry(RoleMerged) == nil {
		return nil, fmt.Errorf("%w: the artifact has no %s digest", ErrMalformed, Key(RoleMerged, p.Algorithm))
	}
	if p.Entry(RoleManifest) == nil || p.Entry(RoleConfig) == nil {
		return nil, fmt.Errorf("%w: a signed artifact must sign the manifest and the config too", ErrMalformed)
	}
	return p, nil
}

// parseArtifactLayer reads layer i of an artifact.
func parseArtifactLayer(i int, l v1.Descriptor) (ArtifactEntry, Algorithm, error) {
	if l.MediaType != SignatureMediaType {
		return ArtifactEntry{}, Algorithm{}, fmt.Errorf("%w: artifact layer %d has media type %q, not %s", ErrMalformed, i, l.MediaType, SignatureMediaType)
	}
	if l.Size <= 0 || l.Size > MaxSignatureSize {
		return ArtifactEntry{}, Algorithm{}, fmt.Errorf("%w: artifact layer %d: a signature of %d bytes", ErrMalformed, i, l.Size)
	}
	var e ArtifactEntry
	var a Algorithm
	n := 0
	for k, v := range l.Annotations {
		role, alg, sig, ok, err := ParseKey(k)
		if err != nil {
			return ArtifactEntry{}, Algorithm{}, fmt.Errorf("artifact layer %d: %w", i, err)
		}
		if !ok {
			continue
		}
		if sig || role == RoleLayer {
			return ArtifactEntry{}, Algorithm{}, fmt.Errorf("%w: artifact layer %d: annotation %q has no place in an artifact", ErrMalformed, i, k)
		}
		d, err := digest.ParseAlg(v, alg.Hash)
		if err != nil {
			return ArtifactEntry{}, Algorithm{}, fmt.Errorf("%w: artifact layer %d: %s: %w", ErrMalformed, i, k, err)
		}
		e, a, n = ArtifactEntry{Role: role, Digest: d, Signature: l}, alg, n+1
	}
	if n != 1 {
		return ArtifactEntry{}, Algorithm{}, fmt.Errorf("%w: artifact layer %d has %d composefs digest annotations, want 1", ErrMalformed, i, n)
	}
	return e, a, nil
}

// Entry returns the artifact's entry for role, or nil.
func (p *ParsedArtifact) Entry(role Role) *ArtifactEntry {
	for i := range p.Entries {
		if p.Entries[i].Role == role {
			return &p.Entries[i]
		}
	}
	return nil
}
