package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
)

// Inline returns manifest sealed in inline mode (the specification's
// "Inline composefs metadata"): the config descriptor gets the config
// digest, each layer descriptor its layer's EROFS digest, and the
// manifest's top-level annotations the merged EROFS digest; with a
// signer, the config and merged digests get their signatures too, base64
// under the digest key with ".sig" appended. Composefs annotations the
// manifest had are replaced; nothing else changes but the JSON's layout.
// d must be the digests of this manifest's image (d.ManifestDigest its
// digest).
func Inline(manifest []byte, d *Digests, signer Signer) ([]byte, error) {
	sum := sha256.Sum256(manifest)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.ManifestDigest {
		return nil, fmt.Errorf("seal: the digests are of the manifest %s, not of %s", d.ManifestDigest, got)
	}
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("seal: manifest %s: %w", d.ManifestDigest, err)
	}
	if len(m.Layers) != len(d.Layers) {
		return nil, fmt.Errorf("seal: manifest %s has %d layers, the digests %d", d.ManifestDigest, len(m.Layers), len(d.Layers))
	}
	a := d.Algorithm
	set := func(ann map[string]string, role Role, dg digest.Digest, sign bool) (map[string]string, error) {
		ann = withoutComposefs(ann)
		ann[Key(role, a)] = dg.Hex()
		if sign && signer != nil {
			sig, err := signer.Sign(dg)
			if err != nil {
				return nil, err
			}
			ann[SigKey(role, a)] = base64.StdEncoding.EncodeToString(sig)
		}
		return ann, nil
	}
	if m.Config.Annotations, err = set(m.Config.Annotations, RoleConfig, d.Config, true); err != nil {
		return nil, err
	}
	for i := range m.Layers {
		if m.Layers[i].Annotations, err = set(m.Layers[i].Annotations, RoleLayer, d.Layers[i], false); err != nil {
			return nil, err
		}
	}
	if m.Annotations, err = set(m.Annotations, RoleMerged, d.Merged, true); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// withoutComposefs returns a copy of ann without composefs's keys.
func withoutComposefs(ann map[string]string) map[string]string {
	out := maps.Clone(ann)
	if out == nil {
		out = map[string]string{}
	}
	for k := range out {
		if strings.HasPrefix(k, keyPrefix) {
			delete(out, k)
		}
	}
	return out
}

// Sealed is what an image's sealing metadata claims, for one algorithm:
// the digests (zero when absent) and the signatures present.
type Sealed struct {
	Algorithm Algorithm
	// Manifest (artifact mode only), Config and Merged digests; Layers,
	// bottom first, when the metadata has them (else nil).
	Manifest, Config, Merged digest.Digest
	Layers                   []digest.Digest
	// Signatures holds the PKCS#7 signatures by role (manifest, config,
	// merged), when the metadata has them.
	Signatures map[Role][]byte
}

// ReadInline reads the inline sealing metadata of manifest for algorithm
// a: the merged digest from the top-level annotations, the config digest
// from the config descriptor, the layers' from the layer descriptors, and
// the ".sig" signatures beside them. A value that is not a digest of a,
// or a signature that is not base64, is an error wrapping ErrMalformed;
// keys of other algorithms are ignored.
func ReadInline(manifest []byte, a Algorithm) (*Sealed, error) {
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrMalformed, err)
	}
	s := &Sealed{Algorithm: a, Signatures: map[Role][]byte{}}
	if s.Merged, err = s.read(m.Annotations, RoleMerged, "the manifest's annotations"); err != nil {
		return nil, err
	}
	if s.Config, err = s.read(m.Config.Annotations, RoleConfig, "the config descriptor"); err != nil {
		return nil, err
	}
	layers := make([]digest.Digest, len(m.Layers))
	some := false
	for i, l := range m.Layers {
		if layers[i], err = s.read(l.Annotations, RoleLayer, fmt.Sprintf("layer %d's descriptor", i)); err != nil {
			return nil, err
		}
		some = some || !layers[i].IsZero()
	}
	if some {
		s.Layers = layers
	}
	return s, nil
}

// read reads role's digest (and signature) from ann, where names the
// place for errors.
func (s *Sealed) read(ann map[string]string, role Role, where string) (digest.Digest, error) {
	v, ok := ann[Key(role, s.Algorithm)]
	if !ok {
		return digest.Digest{}, nil
	}
	d, err := digest.ParseAlg(v, s.Algorithm.Hash)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("%w: %s in %s: %w", ErrMalformed, Key(role, s.Algorithm), where, err)
	}
	if sv, ok := ann[SigKey(role, s.Algorithm)]; ok {
		if len(sv) > 2*MaxSignatureSize {
			return digest.Digest{}, fmt.Errorf("%w: %s in %s: %d bytes", ErrMalformed, SigKey(role, s.Algorithm), where, len(sv))
		}
		sig, err := base64.StdEncoding.DecodeString(sv)
		if err != nil {
			return digest.Digest{}, fmt.Errorf("%w: %s in %s: %w", ErrMalformed, SigKey(role, s.Algorithm), where, err)
		}
		if role != RoleLayer {
			s.Signatures[role] = sig
		}
	}
	return d, nil
}
