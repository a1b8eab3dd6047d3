package seal

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// testDigests are digests of made-up content, for an artifact's shape.
func testDigests(manifest []byte) (*Digests, v1.Descriptor) {
	h, size, _ := v1.SHA256(bytes.NewReader(manifest))
	return &Digests{
		Algorithm: SHA512_12, ManifestDigest: h.String(),
		Manifest: BytesDigest(manifest, fsverity.SHA512),
		Config:   BytesDigest([]byte("config"), fsverity.SHA512),
		Merged:   BytesDigest([]byte("erofs"), fsverity.SHA512),
	}, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: size}
}

// The artifact manifest has the shape of the specification's "Artifact
// Manifest" example (sealing_spec.rs): artifactType, the empty config,
// signature layers for manifest, config and merged in that order, each
// with its digest annotation, and the image as subject. Breaking any rule
// is refused.
func TestArtifactShape(t *testing.T) {
	key := newTestKey(t, "gocfs", 1)
	d, subject := testDigests([]byte(`{"schemaVersion":2}`))
	art, err := BuildArtifact(d, subject, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(art.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != "application/vnd.composefs.metadata.v1" || m.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Digest.String() != EmptyConfigDigest || m.Config.Size != 2 ||
		m.Subject == nil || m.Subject.Digest != subject.Digest {
		t.Errorf("artifact manifest %s", art.Manifest)
	}
	wantKeys := []string{"composefs.manifest.fsverity-sha512-12", "composefs.config.fsverity-sha512-12", "composefs.merged.erofs.v1.fsverity-sha512-12"}
	for i, l := range m.Layers {
		if l.MediaType != "application/vnd.composefs.signature.v1+pkcs7" || len(l.Annotations) != 1 || l.Annotations[wantKeys[i]] == "" {
			t.Errorf("layer %d: %+v", i, l)
		}
		if VerifySignature(art.Blobs[l.Digest.String()], []digest.Digest{d.Manifest, d.Config, d.Merged}[i], key.signer.Cert) != nil {
			t.Errorf("layer %d's signature does not verify", i)
		}
	}
	p, err := ParseArtifact(art.Manifest, subject.Digest.String())
	if err != nil || p.Algorithm != SHA512_12 || len(p.Entries) != 3 || p.Entry(RoleMerged).Digest != d.Merged {
		t.Fatalf("ParseArtifact: %+v %v", p, err)
	}

	for name, edit := range map[string]func(m *v1.Manifest){
		"another subject":   func(m *v1.Manifest) { m.Subject.Digest.Hex = "00" + m.Subject.Digest.Hex[2:] },
		"no subject":        func(m *v1.Manifest) { m.Subject = nil },
		"artifactType":      func(m *v1.Manifest) { m.ArtifactType = "application/x" },
		"config":            func(m *v1.Manifest) { m.Config.MediaType = "application/vnd.oci.image.config.v1+json" },
		"order":             func(m *v1.Manifest) { m.Layers[0], m.Layers[2] = m.Layers[2], m.Layers[0] },
		"repeated":          func(m *v1.Manifest) { m.Layers[1] = m.Layers[0] },
		"no merged":         func(m *v1.Manifest) { m.Layers = m.Layers[:2] },
		"unsigned manifest": func(m *v1.Manifest) { m.Layers = m.Layers[1:] },
		"two algorithms": func(m *v1.Manifest) {
			m.Layers[1].Annotations = map[string]string{"composefs.config.fsverity-sha256-12": d.Config.Hex()[:64]}
		},
		"two annotations": func(m *v1.Manifest) { m.Layers[2].Annotations[wantKeys[1]] = d.Config.Hex() },
		"bad digest":      func(m *v1.Manifest) { m.Layers[2].Annotations[wantKeys[2]] = "xyz" },
		"media type":      func(m *v1.Manifest) { m.Layers[2].MediaType = "application/octet-stream" },
		"huge signature":  func(m *v1.Manifest) { m.Layers[2].Size = 1 << 30 },
		"a layer annotation": func(m *v1.Manifest) {
			m.Layers[2].Annotations = map[string]string{"composefs.layer.erofs.v1.fsverity-sha512-12": d.Merged.Hex()}
		},
	} {
		var mm v1.Manifest
		json.Unmarshal(art.Manifest, &mm)
		edit(&mm)
		raw, _ := json.Marshal(mm)
		_, err := ParseArtifact(raw, subject.Digest.String())
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// Inline annotations whose values are not digests of their algorithm, or
// whose signatures are not base64, are refused; other keys are ignored.
func TestReadInlineMalformed(t *testing.T) {
	d, _ := testDigests([]byte("m"))
	empty, _ := v1.NewHash(EmptyConfigDigest)
	m := v1.Manifest{SchemaVersion: 2, Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: empty, Size: 2}}
	m.Annotations = map[string]string{Key(RoleMerged, SHA512_12): d.Merged.Hex()}
	raw, _ := json.Marshal(m)
	if s, err := ReadInline(raw, SHA512_12); err != nil || s.Merged != d.Merged {
		t.Fatalf("a good annotation: %+v %v", s, err)
	}
	for name, ann := range map[string]map[string]string{
		"short digest":  {Key(RoleMerged, SHA512_12): d.Merged.Hex()[:64]},
		"uppercase":     {Key(RoleMerged, SHA512_12): "AB" + d.Merged.Hex()[2:]},
		"bad signature": {Key(RoleMerged, SHA512_12): d.Merged.Hex(), SigKey(RoleMerged, SHA512_12): "%%%"},
	} {
		m.Annotations = ann
		raw, _ := json.Marshal(m)
		if _, err := ReadInline(raw, SHA512_12); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	m.Annotations = map[string]string{Key(RoleMerged, SHA256_12): d.Merged.Hex()[:64], "composefs.merged.erofs.v2.fsverity-sha512-12": "x"}
	raw, _ = json.Marshal(m)
	if s, err := ReadInline(raw, SHA512_12); err != nil || !s.Merged.IsZero() {
		t.Errorf("keys of other algorithms or versions: %+v %v", s, err)
	}
}
