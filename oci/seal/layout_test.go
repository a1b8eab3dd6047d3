package seal

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"

	"github.com/gocfs/gocfs/oci"
)

// Inline mode with signatures, through OCI layouts: sealed with --key,
// the sealed image pulled with --verify=signed; a corrupted ".sig"
// annotation or another certificate is refused.
func TestSealLayoutInlineSigned(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := writeTestLayout(t)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(img v1.Image, name string) { tagImage(t, p, img, name) }
	key := newTestKey(t, "gocfs signer", 1)
	res, err := Seal(ctx, newRepo(t), "oci:"+dir+":v1", "oci:"+dir+":sealed", oci.PullOptions{}, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	_, vres, err := Pull(ctx, r, "oci:"+dir+":sealed", PullOptions{Mode: VerifySigned, Cert: key.signer.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if vres.Source != "inline" || vres.Merged != res.Digests.Merged || len(vres.Signatures) != 2 {
		t.Errorf("verified %s from %s with %d signatures", vres.Merged, vres.Source, len(vres.Signatures))
	}
	// The sealed manifest's signatures are the specification's base64
	// PKCS#7, under the digest keys with ".sig".
	sealed, err := p.Image(mustHash(t, res.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sealed.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Annotations[SigKey(RoleMerged, res.Digests.Algorithm)])
	if err != nil || VerifySignature(sig, res.Digests.Merged, key.signer.Cert) != nil {
		t.Errorf("the merged .sig annotation does not verify: %v", err)
	}

	other := newTestKey(t, "gocfs signer", 2)
	if _, _, err := Pull(ctx, newRepo(t), "oci:"+dir+":sealed", PullOptions{Mode: VerifySigned, Cert: other.signer.Cert}); !errors.Is(err, ErrSignature) {
		t.Errorf("another certificate: %v, want ErrSignature", err)
	}
	// A corrupted signature annotation.
	raw, _ := sealed.RawManifest()
	k := SigKey(RoleMerged, res.Digests.Algorithm)
	bad := bytes.Clone(sig)
	bad[len(bad)-1] ^= 1
	mm, _ := v1.ParseManifest(bytes.NewReader(raw))
	mm.Annotations[k] = base64.StdEncoding.EncodeToString(bad)
	tag(&sealedImage{Image: sealed, raw: mustJSON(t, mm), m: mm}, "corrupt")
	rr := newRepo(t)
	_, _, err = Pull(ctx, rr, "oci:"+dir+":corrupt", PullOptions{Mode: VerifySigned, Cert: key.signer.Cert, PullOptions: oci.PullOptions{Name: "corrupt"}})
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "merged signature") {
		t.Errorf("a corrupted signature: %v", err)
	}
	if imgs, _ := oci.Images(rr); len(imgs) != 0 {
		t.Errorf("a refused image left names: %v", imgs)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// writeTestLayout writes an OCI layout holding testImage(t, "v1") as v1.
func writeTestLayout(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	tagImage(t, p, testImage(t, "v1"), "v1")
	return dir
}

func tagImage(t testing.TB, p layout.Path, img v1.Image, name string) {
	t.Helper()
	ann := map[string]string{refNameAnnotation: name}
	if err := p.ReplaceImage(img, match.Annotation(refNameAnnotation, name), layout.WithAnnotations(ann)); err != nil {
		t.Fatal(err)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
