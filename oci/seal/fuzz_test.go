package seal

import (
	"testing"

	"github.com/gocfs/gocfs/fsverity"
)

// The parsers of untrusted sealing metadata never panic, and what they
// accept is consistent.
func FuzzParseKey(f *testing.F) {
	for _, k := range []string{"composefs.merged.erofs.v1.fsverity-sha512-12", "composefs.config.fsverity-sha256-16.sig", "composefs.layer.erofs.v1.fsverity-sha1-12", "composefs.", "x"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		role, a, sig, ok, err := ParseKey(k)
		if ok && err == nil {
			want := Key(role, a)
			if sig {
				want += ".sig"
			}
			if want != k {
				t.Errorf("ParseKey(%q) gives %s %s, whose key is %q", k, role, a, want)
			}
		}
	})
}

func FuzzReadArtifact(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"artifactType":"application/vnd.composefs.metadata.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.composefs.signature.v1+pkcs7","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":{"composefs.merged.erofs.v1.fsverity-sha256-12":"00"}}],"subject":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1}}`))
	f.Add([]byte(`{"annotations":{"composefs.merged.erofs.v1.fsverity-sha512-12":"zz","composefs.merged.erofs.v1.fsverity-sha512-12.sig":"!!"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseArtifact(data, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
		for _, a := range []Algorithm{SHA256_12, SHA512_12} {
			if s, err := ReadInline(data, a); err == nil && !s.Merged.IsZero() && s.Merged.Algorithm() != a.Hash {
				t.Errorf("ReadInline gave a %s digest for %s", s.Merged.Algorithm(), a)
			}
		}
		VerifySignature(data, BytesDigest(data, fsverity.SHA256), nil)
	})
}
