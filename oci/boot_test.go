package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
)

// GenerateBootImage links the bootable image as composefs-rs's
// ensure_oci_composefs_erofs_boot does, read back by the independent
// rsRepoReader: the configuration stream names it composefs.image.boot.v1
// (BOOT_IMAGE_REF_KEY_V1, crates/composefs-oci/src/lib.rs), its stream
// references in write_config_raw's order (diff IDs, composefs.image.v1,
// the boot images), the manifest stream names the new configuration
// stream, and everything still rebuilds; a second call changes nothing.
func TestGenerateBootImageLayout(t *testing.T) {
	ctx := context.Background()
	r := newTestRepoAlg(t, fsverity.SHA256)
	layers := testLayers()
	layers = append(layers, []member{dirM("boot/", 0o755), fileM("boot/vmlinuz", 0o644, []byte("kernel")),
		dirM("sysroot/", 0o755), fileM("sysroot/x", 0o644, []byte("x"))})
	layout := writeLayout(t, testImage(t, layers), "v1")
	res, err := Pull(ctx, r, "oci:"+layout+":v1", PullOptions{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BootImage(r, "app"); !errors.Is(err, ErrNoBootImage) {
		t.Fatalf("BootImage before GenerateBootImage: %v, want ErrNoBootImage", err)
	}
	d, err := GenerateBootImage(ctx, r, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want, err := ComputeBootableID(ctx, r, "app"); err != nil || want != d {
		t.Fatalf("GenerateBootImage = %s, ComputeBootableID = %s %v", d, want, err)
	}
	if got, err := BootImage(r, "app"); err != nil || got != d {
		t.Errorf("BootImage = %s %v, want %s", got, err, d)
	}
	rr := &rsRepoReader{t: t, dir: r.Dir(), alg: fsverity.SHA256}
	checkRSImage(t, rr, "app", res)
	rec, err := lookupRecord(r, "app")
	if err != nil {
		t.Fatal(err)
	}
	cf, cd := rr.stream("oci-config-"+rec.ConfigDigest, "ociconfg")
	if got := rr.named(cf, "composefs.image.boot.v1"); !bytes.Equal(got, d.Bytes()) {
		t.Fatalf("composefs.image.boot.v1 is %s, want %s", hex.EncodeToString(got), d)
	}
	n := len(rec.Layers)
	for i, l := range rec.Layers {
		if cf.Named[l.DiffID] != i {
			t.Errorf("layer %d's stream is stream ref %d", i, cf.Named[l.DiffID])
		}
	}
	if cf.Named["composefs.image.v1"] != n || (rec.Image != d.Hex() && cf.Named["composefs.image.boot.v1"] != n+1) {
		t.Errorf("stream ref order: %v, want the layers, composefs.image.v1, composefs.image.boot.v1", cf.Named)
	}
	if _, err := GenerateBootImage(ctx, r, "app"); err != nil {
		t.Fatal(err)
	}
	if _, cd2 := rr.stream("oci-config-"+rec.ConfigDigest, "ociconfg"); !bytes.Equal(cd, cd2) {
		t.Error("a second GenerateBootImage wrote the configuration stream again")
	}
	// Pulling the image again keeps the link: the same configuration
	// stream, byte for byte.
	if _, err := Pull(ctx, r, "oci:"+layout+":v1", PullOptions{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, cd2 := rr.stream("oci-config-"+rec.ConfigDigest, "ociconfg"); !bytes.Equal(cd, cd2) {
		t.Error("pulling the image again wrote another configuration stream (the boot image link lost?)")
	}
	if got, err := BootImage(r, "app"); err != nil || got != d {
		t.Errorf("BootImage after pulling again = %s %v, want %s", got, err, d)
	}
	fr, err := Fsck(ctx, r, "app")
	if err != nil || fr.Images[0].Error != "" {
		t.Fatalf("fsck of the linked image: %v %+v", err, fr)
	}
	os.Remove(filepath.Join(r.Dir(), "images", d.Hex()))
	os.Remove(filepath.Join(r.Dir(), "objects", d.ObjectPath()))
	if fr, err = Fsck(ctx, r, "app"); err != nil || !strings.Contains(fr.Images[0].Error, "boot image "+d.Hex()) {
		t.Errorf("fsck with the linked boot image removed: %v %+v", err, fr)
	}
}
