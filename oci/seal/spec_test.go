package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// The annotation keys, as composefs-rs's sealing specification spells
// them (crates/composefs-oci/src/sealing_spec.rs, "Annotation key
// scheme" table and the examples).
func TestKeysMatchSpec(t *testing.T) {
	for _, c := range []struct {
		role Role
		alg  Algorithm
		want string
	}{
		{RoleLayer, SHA512_12, "composefs.layer.erofs.v1.fsverity-sha512-12"},
		{RoleMerged, SHA512_12, "composefs.merged.erofs.v1.fsverity-sha512-12"},
		{RoleMergedBootable, SHA512_12, "composefs.merged.bootable.erofs.v1.fsverity-sha512-12"},
		{RoleConfig, SHA512_12, "composefs.config.fsverity-sha512-12"},
		{RoleManifest, SHA512_12, "composefs.manifest.fsverity-sha512-12"},
		{RoleMerged, SHA256_12, "composefs.merged.erofs.v1.fsverity-sha256-12"},
		{RoleConfig, SHA256_16, "composefs.config.fsverity-sha256-16"},
	} {
		if got := Key(c.role, c.alg); got != c.want {
			t.Errorf("Key(%s, %s) = %q, want %q", c.role, c.alg, got, c.want)
		}
		role, alg, sig, ok, err := ParseKey(c.want)
		if err != nil || !ok || sig || role != c.role || alg != c.alg {
			t.Errorf("ParseKey(%q) = %s %s %v %v %v", c.want, role, alg, sig, ok, err)
		}
	}
	// "The signature annotation key is simply the digest key with .sig
	// appended (e.g. composefs.merged.erofs.v1.fsverity-sha512-12.sig)".
	if got := SigKey(RoleMerged, SHA512_12); got != "composefs.merged.erofs.v1.fsverity-sha512-12.sig" {
		t.Errorf("SigKey = %q", got)
	}
	if _, _, sig, ok, err := ParseKey("composefs.merged.erofs.v1.fsverity-sha512-12.sig"); !sig || !ok || err != nil {
		t.Errorf("ParseKey of a .sig key: sig %v ok %v err %v", sig, ok, err)
	}
	// Media types ("Media Types") and the empty config ("Artifact Manifest").
	if ArtifactType != "application/vnd.composefs.metadata.v1" || SignatureMediaType != "application/vnd.composefs.signature.v1+pkcs7" {
		t.Errorf("media types %q %q", ArtifactType, SignatureMediaType)
	}
	sum := sha256.Sum256([]byte(EmptyConfig))
	if "sha256:"+hex.EncodeToString(sum[:]) != EmptyConfigDigest {
		t.Errorf("the empty config's digest is not sha256(%q)", EmptyConfig)
	}
	for _, bad := range []string{"composefs.merged.fsverity-sha512-12", "composefs.config.erofs.v1.fsverity-sha512-12", "composefs.merged.erofs.v1.fsverity-sha1-12", "composefs.merged.erofs.v1.fsverity-sha512-13", "composefs.merged.erofs.v1"} {
		if _, _, _, ok, err := ParseKey(bad); !ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseKey(%q): ok %v err %v, want ErrMalformed", bad, ok, err)
		}
	}
	if _, _, _, ok, err := ParseKey("org.opencontainers.image.title"); ok || err != nil {
		t.Errorf("a foreign key: ok %v err %v", ok, err)
	}
	if err := SHA512_16.Computable(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("64 KiB blocks: %v, want ErrUnsupported", err)
	}
}

// The signed message is the kernel's struct fsverity_formatted_digest
// (sealing_spec.rs, "Signature Format"): "FSVerity", le16 algorithm
// (FS_VERITY_HASH_ALG_SHA256 = 1, SHA512 = 2), le16 size, digest.
func TestFormattedDigest(t *testing.T) {
	d := digest.MustNew(fsverity.SHA512, bytes.Repeat([]byte{0xab}, 64))
	got := FormattedDigest(d)
	want := append([]byte("FSVerity\x02\x00\x40\x00"), bytes.Repeat([]byte{0xab}, 64)...)
	if !bytes.Equal(got, want) {
		t.Errorf("FormattedDigest = %x, want %x", got, want)
	}
	d256 := digest.MustNew(fsverity.SHA256, bytes.Repeat([]byte{1}, 32))
	if got := FormattedDigest(d256)[8:12]; !bytes.Equal(got, []byte{1, 0, 32, 0}) {
		t.Errorf("SHA-256 header %x", got)
	}
}

func TestSignVerify(t *testing.T) {
	k := newTestKey(t, "gocfs test", 1)
	other := newTestKey(t, "gocfs other", 2)
	d := BytesDigest([]byte("an EROFS image"), fsverity.SHA512)
	sig, err := k.signer.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(sig, d, k.signer.Cert); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	// Another digest, another key (same subject or not), a flipped byte:
	// each refused.
	d2 := BytesDigest([]byte("another image"), fsverity.SHA512)
	if err := VerifySignature(sig, d2, k.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("another digest: %v", err)
	}
	if err := VerifySignature(sig, d, other.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("another certificate: %v", err)
	}
	osig, _ := other.signer.Sign(d)
	if err := VerifySignature(osig, d, k.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("a signature by another key: %v", err)
	}
	// A key whose certificate copies the issuer and serial number: the
	// signer is found, its signature does not verify.
	forged := newTestKey(t, "gocfs test", 1)
	fsig, _ := forged.signer.Sign(d)
	if err := VerifySignature(fsig, d, k.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("a signature by a key posing as the certificate's: %v", err)
	}
	bad := bytes.Clone(sig)
	bad[len(bad)-10] ^= 1
	if err := VerifySignature(bad, d, k.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("a corrupted signature: %v", err)
	}
	if err := VerifySignature([]byte("junk"), d, k.signer.Cert); !errors.Is(err, ErrSignature) {
		t.Errorf("junk: %v", err)
	}
	// The PEM loader pairs key and certificate.
	if _, err := LoadKeySigner(k.keyPEM, k.certPEM); err != nil {
		t.Error(err)
	}
	if _, err := LoadKeySigner(k.keyPEM, other.certPEM); err == nil {
		t.Error("a key with another's certificate was accepted")
	}
}

// The signature is what the fsverity tool's "sign" makes, and the kernel
// takes: detached (no content), no signed attributes, rsaEncryption.
func TestSignatureShape(t *testing.T) {
	k := newTestKey(t, "gocfs test", 7)
	d := BytesDigest([]byte("x"), fsverity.SHA256)
	sig, err := k.signer.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	rsaEncryption := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}
	if !bytes.Contains(sig, rsaEncryption) {
		t.Error("no rsaEncryption OID in the signature")
	}
	if bytes.Contains(sig, FormattedDigest(d)) {
		t.Error("the signature is not detached: it holds the signed digest")
	}
	messageDigestOID := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04}
	if bytes.Contains(sig, messageDigestOID) {
		t.Error("the signature has signed attributes")
	}
}
