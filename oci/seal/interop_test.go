package seal

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/smallstep/pkcs7"

	"github.com/gocfs/gocfs/fsverity"
)

// Our signatures and fsverity-utils' ("fsverity sign", the tool whose
// output FS_IOC_ENABLE_VERITY documents) are interchangeable: each
// verifies the other's way, and the signature values are the same bytes
// (RSA PKCS#1 v1.5 is deterministic); OpenSSL verifies ours as a detached
// PKCS#7 signature of the formatted digest.
func TestSignatureInterop(t *testing.T) {
	if _, err := exec.LookPath("fsverity"); err != nil {
		t.Skip("fsverity (fsverity-utils) is not installed")
	}
	dir := t.TempDir()
	key := newTestKey(t, "gocfs interop", 5)
	keyFile, certFile, file := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "data")
	for name, data := range map[string][]byte{keyFile: key.keyPEM, certFile: key.certPEM, file: bytes.Repeat([]byte("composefs "), 1000)} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		data, _ := os.ReadFile(file)
		d := BytesDigest(data, alg)
		theirsFile := filepath.Join(dir, "theirs-"+alg.String())
		out, err := exec.Command("fsverity", "sign", file, theirsFile, "--key="+keyFile, "--cert="+certFile, "--hash-alg="+alg.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("fsverity sign: %v\n%s", err, out)
		}
		theirs, _ := os.ReadFile(theirsFile)
		if err := VerifySignature(theirs, d, key.signer.Cert); err != nil {
			t.Errorf("%s: fsverity-utils' signature does not verify here: %v", alg, err)
		}
		ours, err := key.signer.Sign(d)
		if err != nil {
			t.Fatal(err)
		}
		p1, err1 := pkcs7.Parse(ours)
		p2, err2 := pkcs7.Parse(theirs)
		if err1 != nil || err2 != nil || len(p1.Signers) != 1 || len(p2.Signers) != 1 {
			t.Fatalf("%s: parse: %v %v", alg, err1, err2)
		}
		s1, s2 := p1.Signers[0], p2.Signers[0]
		if !bytes.Equal(s1.EncryptedDigest, s2.EncryptedDigest) || !s1.DigestAlgorithm.Algorithm.Equal(s2.DigestAlgorithm.Algorithm) ||
			!s1.DigestEncryptionAlgorithm.Algorithm.Equal(s2.DigestEncryptionAlgorithm.Algorithm) {
			t.Errorf("%s: our signer info differs from fsverity-utils': %+v vs %+v", alg, s1, s2)
		}
		if _, err := exec.LookPath("openssl"); err == nil {
			msg, sig := filepath.Join(dir, "msg"), filepath.Join(dir, "ours.der")
			os.WriteFile(msg, FormattedDigest(d), 0o600)
			os.WriteFile(sig, ours, 0o600)
			out, err := exec.Command("openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", msg,
				"-certfile", certFile, "-nointern", "-noverify", "-out", os.DevNull).CombinedOutput()
			if err != nil {
				t.Errorf("%s: openssl does not verify our signature: %v\n%s", alg, err, out)
			}
		}
	}
}
