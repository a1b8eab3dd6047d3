package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/rsspec"
	"github.com/gocfs/gocfs/repo"
)

// rsRepoReader reads a repository the way composefs-rs does, by hand from
// its source, sharing nothing with packages repo and oci but the
// independent split stream reader internal/rsspec:
//
//	[repo] crates/composefs/src/repository.rs: streams/NAME and
//	       images/HEX link to ../objects/XX/REST; open_stream follows the
//	       link and reads the object; objects are named by their fs-verity
//	       digest.
//	[oci]  crates/composefs-oci/src/oci_image.rs and lib.rs: tags are
//	       streams/refs/oci/encode_tag(NAME) -> ../../oci-manifest-DIGEST;
//	       the manifest stream ("ocimanif") names config:DIGEST; the
//	       config stream ("ociconfg") names each diff ID's layer stream
//	       and composefs.image.v1 the EROFS image; a layer stream
//	       ("ocilayer") is oci-layer-DIFFID.
type rsRepoReader struct {
	t   *testing.T
	dir string
	alg fsverity.Algorithm
}

// object reads the object of hex digest d, checked against its name.
func (rr *rsRepoReader) object(d []byte) []byte {
	rr.t.Helper()
	h := hex.EncodeToString(d)
	b, err := os.ReadFile(filepath.Join(rr.dir, "objects", h[:2], h[2:]))
	if err != nil {
		rr.t.Fatal(err)
	}
	if got := hex.EncodeToString(fsverity.Sum(b, rr.alg)); got != h {
		rr.t.Fatalf("object %s has the fs-verity digest %s", h, got)
	}
	return b
}

// link reads the symlink rel of the repository.
func (rr *rsRepoReader) link(rel string) string {
	rr.t.Helper()
	l, err := os.Readlink(filepath.Join(rr.dir, rel))
	if err != nil {
		rr.t.Fatal(err)
	}
	return l
}

// stream parses streams/NAME, whose link must be ../objects/XX/REST, and
// checks its content type.
func (rr *rsRepoReader) stream(name, contentType string) (*rsspec.File, []byte) {
	rr.t.Helper()
	l := rr.link("streams/" + name)
	hexd, ok := strings.CutPrefix(l, "../objects/")
	if !ok || len(hexd) != 2*rr.alg.Size()+1 || hexd[2] != '/' {
		rr.t.Fatalf("streams/%s -> %s, not ../objects/XX/REST", name, l)
	}
	d, _ := hex.DecodeString(hexd[:2] + hexd[3:])
	f, err := rsspec.Parse(rr.object(d))
	if err != nil {
		rr.t.Fatalf("streams/%s: %v", name, err)
	}
	if want := binary.LittleEndian.Uint64([]byte(contentType)); f.ContentType != want {
		rr.t.Errorf("streams/%s: content type %#x, want %q", name, f.ContentType, contentType)
	}
	return f, d
}

// content rebuilds a stream: its inline chunks and its objects, in order.
func (rr *rsRepoReader) content(f *rsspec.File) []byte {
	var b bytes.Buffer
	for _, c := range f.Chunks {
		if c.Inline != nil {
			b.Write(c.Inline)
		} else {
			b.Write(rr.object(f.ObjectRefs[c.Index]))
		}
	}
	if uint64(b.Len()) != f.StreamSize {
		rr.t.Errorf("rebuilt %d bytes, stream_size %d", b.Len(), f.StreamSize)
	}
	return b.Bytes()
}

// named returns the digest f's named ref name points at.
func (rr *rsRepoReader) named(f *rsspec.File, name string) []byte {
	rr.t.Helper()
	i, ok := f.Named[name]
	if !ok {
		rr.t.Fatalf("no named ref %q in %q", name, f.NamedText)
	}
	return f.StreamRefs[i]
}

// TestComposefsRSReader: everything gocfs's pull stores, read back by
// rsRepoReader as composefs-rs reads it: every stream parses, the tag
// leads to the manifest, the configuration and the image, and every layer
// is rebuilt byte for byte; in a SHA-512 and a SHA-256 repository.
func TestComposefsRSReader(t *testing.T) {
	img := testImage(t, testLayers())
	layout := writeLayout(t, img, "v1")
	for _, alg := range []fsverity.Algorithm{fsverity.SHA512, fsverity.SHA256} {
		t.Run(alg.String(), func(t *testing.T) {
			r := newTestRepoAlg(t, alg)
			const name = "reg.io/app:v1"
			res, err := Pull(context.Background(), r, "oci:"+layout+":v1", PullOptions{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			rr := &rsRepoReader{t: t, dir: r.Dir(), alg: alg}
			ents, err := os.ReadDir(filepath.Join(r.Dir(), "streams"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Name() != "refs" {
					ct := ""
					for prefix, c := range map[string]string{"oci-layer-": "ocilayer", "oci-config-": "ociconfg", "oci-manifest-": "ocimanif"} {
						if strings.HasPrefix(e.Name(), prefix) {
							ct = c
						}
					}
					if ct == "" {
						t.Errorf("stream %s is none of composefs-rs's", e.Name())
						continue
					}
					rr.stream(e.Name(), ct)
				}
			}
			checkRSImage(t, rr, name, res)
			ls, _ := img.Layers()
			cfg, _ := img.ConfigFile()
			for i, l := range ls {
				rc, _ := l.Uncompressed()
				orig, _ := io.ReadAll(rc)
				diffID := cfg.RootFS.DiffIDs[i].String()
				f, _ := rr.stream("oci-layer-"+diffID, "ocilayer")
				got := rr.content(f)
				if !bytes.Equal(got, orig) || fmt.Sprintf("sha256:%x", sha256.Sum256(got)) != diffID {
					t.Errorf("layer %d rebuilt from its stream: %d bytes, the archive %d", i, len(got), len(orig))
				}
			}
		})
	}
}

// checkRSImage follows the tag name to the manifest, configuration and
// composefs image as composefs-rs does.
func checkRSImage(t *testing.T, rr *rsRepoReader, name string, res *PullResult) {
	t.Helper()
	tag := "streams/refs/oci/" + strings.ReplaceAll(strings.ReplaceAll(name, "%", "%25"), "/", "%2F")
	if l := rr.link(tag); l != "../../oci-manifest-"+res.ManifestDigest {
		t.Fatalf("%s -> %s", tag, l)
	}
	mf, _ := rr.stream("oci-manifest-"+res.ManifestDigest, "ocimanif")
	if got := rr.content(mf); fmt.Sprintf("sha256:%x", sha256.Sum256(got)) != res.ManifestDigest {
		t.Errorf("the manifest stream does not rebuild the manifest")
	}
	var configKey string
	for k := range mf.Named {
		if strings.HasPrefix(k, "config:") {
			configKey = k
		}
	}
	cdigest := strings.TrimPrefix(configKey, "config:")
	cf, cd := rr.stream("oci-config-"+cdigest, "ociconfg")
	if !bytes.Equal(rr.named(mf, configKey), cd) {
		t.Errorf("the manifest's %s is not the configuration stream", configKey)
	}
	if got := rr.content(cf); fmt.Sprintf("sha256:%x", sha256.Sum256(got)) != cdigest {
		t.Errorf("the configuration stream does not rebuild the configuration")
	}
	image := hex.EncodeToString(rr.named(cf, "composefs.image.v1"))
	if image != res.Image {
		t.Errorf("composefs.image.v1 is %s, the pull made %s", image, res.Image)
	}
	if l := rr.link("images/" + image); l != "../objects/"+image[:2]+"/"+image[2:] {
		t.Errorf("images/%s -> %s", image, l)
	}
	img, _ := hex.DecodeString(image)
	rr.object(img)
}

// newTestRepoAlg creates a repository of the algorithm alg in a temporary
// directory.
func newTestRepoAlg(t testing.TB, alg fsverity.Algorithm) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Algorithm: alg, Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
