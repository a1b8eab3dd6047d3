package seal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	mountAndRead(t, r, "sealed", MountOptions{Mode: VerifySealed}, "inline", "hello v1\n")

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
	if vres.Source != "artifact "+gres.Manifest || len(vres.Signatures) != 3 {
		t.Errorf("verified from %s with %d signatures, want artifact %s's 3", vres.Source, len(vres.Signatures), gres.Manifest)
	}
	// The artifact is kept beside the image, as composefs-rs keeps a
	// referrer: a signed mount needs no registry, and gc keeps it.
	if _, err := r2.GC(ctx, repo.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if refs, err := oci.Referrers(r2, d.ManifestDigest); err != nil || len(refs) != 1 || refs[0].Digest != gres.Manifest {
		t.Fatalf("stored referrers %v, %v; want the artifact %s", refs, err, gres.Manifest)
	}
	// Named as composefs-rs names them (oci_image.rs add_referrer,
	// write_manifest; skopeo.rs ensure_layer for the blobs).
	if _, d2, err := r2.ResolveStreamRef("oci-referrers/" + d.ManifestDigest + "/" + gres.Manifest); err != nil || d2.IsZero() {
		t.Errorf("no streams/refs/oci-referrers/SUBJECT/ARTIFACT: %v", err)
	}
	for _, s := range []string{"oci-manifest-" + gres.Manifest, "oci-config-" + EmptyConfigDigest} {
		if _, err := r2.ResolveStream(s); err != nil {
			t.Errorf("stream %s: %v", s, err)
		}
	}
	if res, err := oci.Fsck(ctx, r2, ""); err != nil || !res.OK() {
		t.Errorf("fsck after a signed pull: %v %+v", err, res)
	}
	mountAndRead(t, r2, src, MountOptions{Mode: VerifySigned, Cert: key.signer.Cert}, "artifact "+gres.Manifest, "hello v1\n")
	if _, _, err := Mount(ctx, r2, src, t.TempDir(), MountOptions{Mode: VerifySigned, Cert: other.signer.Cert}); !errors.Is(err, ErrSignature) {
		t.Errorf("a signed mount with another certificate: %v", err)
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

// mountAndRead mounts an image with verification and reads a file.
func mountAndRead(t *testing.T, r *repo.Repo, name string, opts MountOptions, source, want string) {
	t.Helper()
	mnt := t.TempDir()
	opts.Mount.Verity = mount.VerityOff
	m, res, err := Mount(context.Background(), r, name, mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	if res.Source != source {
		t.Errorf("verified from %s, want %s", res.Source, source)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "app/hello"))
	if err != nil || string(got) != want {
		t.Errorf("read %q, %v; want %q", got, err, want)
	}
}
