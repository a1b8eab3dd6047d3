package seal

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

// The acceptance of issue 16 against the loopback docker-registry: an
// image is sealed (inline mode), pushed, pulled with --verify=sealed and
// mounted; signed (artifact mode, a referrer through the tag schema) and
// pulled with --verify=signed; and a swapped layer, another key's
// signature, a missing referrer and a stripped annotation are refused.
func TestSealSignRegistry(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	addr := startRegistry(t)
	src := addr + "/gocfs/app:v1"
	push(t, testImage(t, "v1"), src)
	key := newTestKey(t, "gocfs signer", 1)
	other := newTestKey(t, "gocfs signer", 2) // same subject, another key

	// Seal: the sealed manifest carries the digests Compute gives, where
	// the specification puts them; the layers are the source's.
	builder := newRepo(t)
	sealedRef := addr + "/gocfs/app:sealed"
	sres, err := Seal(ctx, builder, src, sealedRef, oci.PullOptions{Name: "app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := sres.Digests
	sealedManifest := fetchManifest(t, sealedRef)
	checkInlineShape(t, sealedManifest, d)

	// Pulled elsewhere with --verify=sealed, and mounted.
	r := newRepo(t)
	res, vres, err := Pull(ctx, r, sealedRef, PullOptions{Mode: VerifySealed, PullOptions: oci.PullOptions{Name: "sealed"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != d.Merged.Hex() || vres.Merged != d.Merged || vres.Source != "inline" {
		t.Errorf("pulled image %s (verified %s from %s), sealed %s", res.Image, vres.Merged, vres.Source, d.Merged)
	}
	mountAndRead(t, r, "sealed", "hello v1\n")

	// Sign (artifact mode): the registry has no referrers API, so the
	// artifact is found through the sha256-HEX tag.
	gres, err := Sign(ctx, builder, src, oci.PullOptions{Name: "app"}, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	checkFallbackTag(t, addr+"/gocfs/app", d.ManifestDigest, gres.Manifest)
	r2 := newRepo(t)
	_, vres, err = Pull(ctx, r2, src, PullOptions{Mode: VerifySigned, Cert: key.signer.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vres.Source, "artifact ") || len(vres.Signatures) != 3 {
		t.Errorf("verified from %s with %d signatures, want an artifact's 3", vres.Source, len(vres.Signatures))
	}

	t.Run("layer swapped after sealing", func(t *testing.T) {
		ref := addr + "/gocfs/app:swapped"
		pushSwapped(t, testImage(t, "evil"), sealedManifest, ref)
		refused(t, ref, PullOptions{Mode: VerifySealed}, ErrMismatch, "layer 1 EROFS")
	})
	t.Run("signature by another key", func(t *testing.T) {
		ref := addr + "/gocfs/other:v1"
		push(t, testImage(t, "other"), ref)
		if _, err := Sign(ctx, newRepo(t), ref, oci.PullOptions{}, other.signer); err != nil {
			t.Fatal(err)
		}
		refused(t, ref, PullOptions{Mode: VerifySigned, Cert: key.signer.Cert}, ErrSignature, "manifest signature")
	})
	t.Run("missing referrer", func(t *testing.T) {
		ref := addr + "/gocfs/unsigned:v1"
		push(t, testImage(t, "unsigned"), ref)
		refused(t, ref, PullOptions{Mode: VerifySigned, Cert: key.signer.Cert}, ErrNotSealed, "no composefs artifact")
	})
	t.Run("stripped annotation", func(t *testing.T) {
		ref := addr + "/gocfs/app:stripped"
		m, err := v1.ParseManifest(bytes.NewReader(sealedManifest))
		if err != nil {
			t.Fatal(err)
		}
		delete(m.Annotations, Key(RoleMerged, d.Algorithm))
		pushManifest(t, ref, m)
		refused(t, ref, PullOptions{Mode: VerifySealed}, ErrNotSealed, Key(RoleMerged, d.Algorithm))
	})
	t.Run("sealed image pulled unverified still works", func(t *testing.T) {
		if _, _, err := Pull(ctx, newRepo(t), sealedRef, PullOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// fetchManifest returns a registry manifest, byte for byte.
func fetchManifest(t testing.TB, ref string) []byte {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Manifest
}

// checkInlineShape checks that each digest is where the specification's
// "Digest-only example" puts it (sealing_spec.rs): the config's on the
// config descriptor, each layer's on its descriptor, the merged one in
// the manifest's annotations.
func checkInlineShape(t *testing.T, raw []byte, d *Digests) {
	t.Helper()
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	a := d.Algorithm
	if got := m.Annotations["composefs.merged.erofs.v1."+a.String()]; got != d.Merged.Hex() {
		t.Errorf("merged annotation %q, want %s", got, d.Merged.Hex())
	}
	if got := m.Config.Annotations["composefs.config."+a.String()]; got != d.Config.Hex() {
		t.Errorf("config annotation %q, want %s", got, d.Config.Hex())
	}
	for i, l := range m.Layers {
		if got := l.Annotations["composefs.layer.erofs.v1."+a.String()]; got != d.Layers[i].Hex() {
			t.Errorf("layer %d annotation %q, want %s", i, got, d.Layers[i].Hex())
		}
	}
	if _, ok := m.Annotations["composefs.manifest."+a.String()]; ok {
		t.Error("inline mode has a manifest digest (the specification says it cannot)")
	}
	if len(m.Layers) != 2 || d.Layers[0] == d.Layers[1] || d.Merged == d.Layers[1] {
		t.Errorf("layers %v merged %v: per-layer and merged digests should differ", d.Layers, d.Merged)
	}
}

// checkFallbackTag checks the referrers tag schema: the subject's
// "sha256-HEX" tag is an index listing the artifact, with its
// artifactType.
func checkFallbackTag(t *testing.T, repoRef, subject, artifact string) {
	t.Helper()
	raw := fetchManifest(t, repoRef+":"+strings.Replace(subject, ":", "-", 1))
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Digest.String() == artifact && m.ArtifactType == ArtifactType {
			return
		}
	}
	t.Errorf("the fallback tag lists %+v, not the artifact %s", idx.Manifests, artifact)
}

// pushSwapped pushes img (another top layer, its own config) with the
// sealed manifest's composefs annotations: a layer swapped after sealing,
// the digests left as they were.
func pushSwapped(t *testing.T, img v1.Image, sealed []byte, ref string) {
	t.Helper()
	sm, err := v1.ParseManifest(bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	push(t, img, ref) // the blobs
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m.Annotations = sm.Annotations
	m.Config.Annotations = sm.Config.Annotations
	for i := range m.Layers {
		m.Layers[i].Annotations = sm.Layers[i].Annotations
	}
	pushManifest(t, ref, m)
}

// pushManifest pushes a manifest whose blobs the repository has.
func pushManifest(t *testing.T, ref string, m *v1.Manifest) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest{m}); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct{ m *v1.Manifest }

func (r rawManifest) RawManifest() ([]byte, error) { return json.Marshal(r.m) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
func (r rawManifest) MediaType() (types.MediaType, error) { return r.m.MediaType, nil }

// mountAndRead mounts an image with --verify=sealed and reads a file.
func mountAndRead(t *testing.T, r *repo.Repo, name, want string) {
	t.Helper()
	mnt := t.TempDir()
	m, res, err := Mount(context.Background(), r, name, mnt, MountOptions{Mode: VerifySealed, Mount: mount.Options{Verity: mount.VerityOff}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	if res.Source != "inline" {
		t.Errorf("verified from %s", res.Source)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "app/hello"))
	if err != nil || string(got) != want {
		t.Errorf("read %q, %v; want %q", got, err, want)
	}
}
