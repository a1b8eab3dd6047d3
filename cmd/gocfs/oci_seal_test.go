package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/gocfs/gocfs/oci/seal"
	"github.com/gocfs/gocfs/repo"
)

// writeKeyPair writes an RSA key and its self-signed certificate as PEM
// files in dir and returns their paths.
func writeKeyPair(t *testing.T, dir, cn string) (keyFile, certFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile = filepath.Join(dir, cn+".key"), filepath.Join(dir, cn+".crt")
	kb := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	cb := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if os.WriteFile(keyFile, kb, 0o600) != nil || os.WriteFile(certFile, cb, 0o644) != nil {
		t.Fatal("writing the key pair")
	}
	return keyFile, certFile
}

// oci seal (inline, signed) into a layout, compute-id --all, and pull
// --verify=signed with the right and the wrong certificate.
func TestOCISealCommands(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, ociTestLayer(t, map[string]string{"etc/a": strings.Repeat("a", 1000)}))
	if err != nil {
		t.Fatal(err)
	}
	dir := ociTestLayout(t, img, "v1")
	keys := t.TempDir()
	key, cert := writeKeyPair(t, keys, "signer")
	_, otherCert := writeKeyPair(t, keys, "other")
	newRepoDir := func() string {
		d := filepath.Join(t.TempDir(), "repo")
		if _, err := repo.Init(d, repo.InitOptions{Insecure: true}, repo.Options{}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	rdir := newRepoDir()
	out, err := runOCI(t, "--repo", rdir, "seal", "--key", key, "--cert", cert, "oci:"+dir+":v1", "oci:"+dir+":sealed")
	if err != nil || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("seal: %v %q", err, out)
	}
	out, err = runOCI(t, "--repo", rdir, "compute-id", "--all", "v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"composefs.manifest.fsverity-", "composefs.config.fsverity-", "composefs.merged.erofs.v1.fsverity-", "composefs.layer.erofs.v1.fsverity-"} {
		if !strings.Contains(out, k) {
			t.Errorf("compute-id --all has no %s line:\n%s", k, out)
		}
	}
	if _, err := runOCI(t, "--repo", newRepoDir(), "pull", "--verify=signed", "--cert", cert, "oci:"+dir+":sealed", "app"); err != nil {
		t.Errorf("pull --verify=signed: %v", err)
	}
	if _, err := runOCI(t, "--repo", newRepoDir(), "pull", "--verify=signed", "--cert", otherCert, "oci:"+dir+":sealed", "app"); !errors.Is(err, seal.ErrSignature) {
		t.Errorf("pull --verify=signed with another certificate: %v, want ErrSignature", err)
	}
	if _, err := runOCI(t, "--repo", newRepoDir(), "pull", "--verify=sealed", "oci:"+dir+":v1", "app"); !errors.Is(err, seal.ErrNotSealed) {
		t.Errorf("pull --verify=sealed of an unsealed image: %v, want ErrNotSealed", err)
	}
	if _, err := runOCI(t, "--repo", newRepoDir(), "pull", "--verify=signed", "oci:"+dir+":sealed", "app"); err == nil || !strings.Contains(err.Error(), "--cert") {
		t.Errorf("--verify=signed without --cert: %v", err)
	}
}
