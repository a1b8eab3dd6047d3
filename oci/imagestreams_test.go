package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
)

func TestTagEncoding(t *testing.T) {
	for name, enc := range map[string]string{"a/b%c": "a%2Fb%25c", "reg.io/app:v1": "reg.io%2Fapp:v1", "%2F": "%252F"} {
		if got := encodeTag(name); got != enc {
			t.Errorf("encodeTag(%q) = %q, want %q", name, got, enc)
		}
		if got := decodeTag(enc); got != name {
			t.Errorf("decodeTag(%q) = %q, want %q", enc, got, name)
		}
	}
	if got := decodeTag("%41%2"); got != "%41%2" {
		t.Errorf("decodeTag kept %q as %q", "%41%2", got)
	}
}

// namedRefs returns the named references of the split stream streams/NAME.
func namedRefs(t *testing.T, r *repo.Repo, name string, ct rsss.ContentType) (digest.Digest, map[string]digest.Digest) {
	t.Helper()
	d, err := r.ResolveStream(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.OpenObject(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ss, err := rsss.NewReader(f, st.Size(), rsss.WithContentType(ct))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer ss.Close()
	out := make(map[string]digest.Digest)
	for _, nr := range ss.NamedRefs() {
		out[nr.Name] = nr.Digest
	}
	return d, out
}

// A pulled image is stored as composefs-rs stores one: manifest and
// configuration streams with composefs-rs's names and named references,
// the tag encoded under streams/refs/oci/, and the configuration keeping
// the EROFS image alive.
func TestImageStreamsLayout(t *testing.T) {
	requireRoot(t)
	img := testImage(t, testLayers())
	r := newTestRepo(t)
	name := "reg.io/app:v1"
	res, err := Pull(context.Background(), r, "oci:"+writeLayout(t, img, "x")+":x", PullOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(r.Dir(), "streams/refs/oci/reg.io%2Fapp:v1"))
	if err != nil || target != "../../oci-manifest-"+res.ManifestDigest {
		t.Fatalf("tag link: %q, %v", target, err)
	}
	cname, _ := img.ConfigName()
	cd, cnamed := namedRefs(t, r, "oci-config-"+cname.String(), rsss.ContentTypeOCIConfig)
	if cnamed["composefs.image.v1"].Hex() != res.Image {
		t.Errorf("configuration names image %v, want %s", cnamed["composefs.image.v1"], res.Image)
	}
	_, mnamed := namedRefs(t, r, "oci-manifest-"+res.ManifestDigest, rsss.ContentTypeOCIManifest)
	if mnamed["config:"+cname.String()] != cd {
		t.Errorf("manifest names configuration %v, want %v", mnamed["config:"+cname.String()], cd)
	}
	for _, l := range res.Layers {
		ld, err := r.ResolveStream("oci-layer-" + l.DiffID)
		if err != nil || cnamed[l.DiffID] != ld || mnamed[l.DiffID] != ld {
			t.Errorf("layer %s: stream %v (%v), configuration names %v, manifest %v", l.DiffID, ld, err, cnamed[l.DiffID], mnamed[l.DiffID])
		}
	}
	if infos, err := Images(r); err != nil || len(infos) != 1 || infos[0].Name != name || infos[0].Image != res.Image {
		t.Fatalf("Images: %+v, %v", infos, err)
	}
	// Without its images/refs name, the image is kept by the configuration.
	if err := r.Untag(name); err != nil {
		t.Fatal(err)
	}
	if gc, err := r.GC(context.Background(), repo.GCOptions{}); err != nil || gc.ObjectsRemoved != 0 || gc.ImagesKept != 1 {
		t.Errorf("gc of a tagged image: %+v, %v", gc, err)
	}
	if got, err := EnsureImage(context.Background(), r, name); err != nil || got != res.Image {
		t.Errorf("EnsureImage: %s, %v", got, err)
	}
	checkFsck(t, r)
	if err := Remove(r, name); err != nil {
		t.Fatal(err)
	}
	if gc, err := r.GC(context.Background(), repo.GCOptions{}); err != nil || gc.ObjectsKept != 0 {
		t.Errorf("gc after removing the image: %+v, %v", gc, err)
	}
}

// buildLegacyImage stores, by hand, an image as earlier gocfs stored it:
// a gocfs-ss layer stream (gocfs-oci-layer-DIFFID) and record
// (gocfs-oci-image-MANIFEST), named by the nested tag
// streams/refs/oci/NAME and images/refs/NAME. It returns the layer's file
// content (the file is /f) and the manifest and configuration.
func buildLegacyImage(t *testing.T, r *repo.Repo, name string) (content, manifest, config []byte) {
	t.Helper()
	content = randBytes(11, 5000)
	data := makeTar(t, []member{fileM("f", 0o644, content)})
	sum := sha256.Sum256(data)
	diffID := fmt.Sprintf("sha256:%x", sum)
	config = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, diffID))
	csum := sha256.Sum256(config)
	manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%x","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, csum, len(config), diffID, len(data)))
	msum := sha256.Sum256(manifest)
	err := r.Update(context.Background(), func(tx *repo.Tx) error {
		objs := tx.Objects()
		obj, err := objs.Put(content)
		if err != nil {
			return err
		}
		w := splitstream.NewWriter(r.Algorithm(), splitstream.TarLayer)
		w.Write(data[:512])
		if err := w.WriteObject(obj.Bytes(), int64(len(content))); err != nil {
			return err
		}
		w.Write(data[5512:])
		ls, err := storeStream(tx, w, sum, legacyLayerStreamPrefix+diffID)
		if err != nil {
			return err
		}
		mobj, _ := objs.Put(manifest)
		cobj, _ := objs.Put(config)
		rec := &ImageRecord{ManifestDigest: fmt.Sprintf("sha256:%x", msum), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Manifest: mobj.Hex(), Config: cobj.Hex(), ConfigDigest: fmt.Sprintf("sha256:%x", csum),
			Layers: []LayerRecord{{Digest: diffID, Size: int64(len(data)), MediaType: "application/vnd.oci.image.layer.v1.tar", DiffID: diffID, Stream: fmt.Sprintf("%x", ls)}}}
		if err := objs.Flush(); err != nil {
			return err
		}
		root, err := recordTree(r, rec, Rules{Legacy: true}) // as gocfs pulled then
		if err != nil {
			return err
		}
		img, err := tx.CommitTree(root, repo.CreateOptions{})
		if err != nil {
			return err
		}
		rec.Image = img.Image
		if err := tx.SetImageRef(name, img.Digest); err != nil {
			return err
		}
		return writeRecord(tx, rec, [][]byte{ls}, name)
	})
	if err != nil {
		t.Fatal(err)
	}
	return content, manifest, config
}

// An image pulled by earlier gocfs (a gocfs-ss record named by a nested
// tag, gocfs-ss layer streams) is still listed, read, kept, rebuilt and
// removed.
func TestLegacyImage(t *testing.T) {
	r := newTestRepo(t)
	const name = "old/nested/name"
	_, manifest, config := buildLegacyImage(t, r, name)
	if _, err := os.Readlink(filepath.Join(r.Dir(), "streams/refs/oci/old/nested/name")); err != nil {
		t.Fatalf("legacy tag: %v", err)
	}
	infos, err := Images(r)
	if err != nil || len(infos) != 1 || infos[0].Name != name || infos[0].Error != "" {
		t.Fatalf("Images: %+v, %v", infos, err)
	}
	m, c, _, err := Manifest(r, name)
	if err != nil || !bytes.Equal(m, manifest) || !bytes.Equal(c, config) {
		t.Fatalf("Manifest: %v", err)
	}
	if gc, err := r.GC(context.Background(), repo.GCOptions{}); err != nil || gc.ObjectsRemoved != 0 {
		t.Errorf("gc of a legacy image: %+v, %v", gc, err)
	}
	if err := r.Untag(name); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureImage(context.Background(), r, name); err != nil {
		t.Errorf("EnsureImage of a legacy image: %v", err)
	}
	checkFsck(t, r)
	if err := Remove(r, name); err != nil {
		t.Fatal(err)
	}
	if gc, err := r.GC(context.Background(), repo.GCOptions{}); err != nil || gc.ObjectsKept != 0 {
		t.Errorf("gc after removing the legacy image: %+v, %v", gc, err)
	}
}

// TestRepullNoGarbage: pulling an image the repository has leaves nothing
// for gc (the configuration and manifest streams come out byte for byte
// the same: their stream refs in composefs-rs's order, the
// configuration's diff IDs then composefs.image.v1, lib.rs
// write_config_raw; the manifest's config:DIGEST then the diff IDs,
// oci_image.rs write_manifest). A map's order used to make each pull
// write new streams.
func TestRepullNoGarbage(t *testing.T) {
	img := testImage(t, testLayers())
	dir := writeLayout(t, img, "v1")
	r := newTestRepo(t)
	var res *PullResult
	for i := 0; i < 4; i++ {
		var err error
		if res, err = Pull(context.Background(), r, "oci:"+dir+":v1", PullOptions{}); err != nil {
			t.Fatal(err)
		}
		g, err := r.GC(context.Background(), repo.GCOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if g.ObjectsRemoved != 0 {
			t.Fatalf("after pull %d, gc would remove %d objects", i+1, g.ObjectsRemoved)
		}
	}
	cfg, _ := img.ConfigFile()
	cname, _ := img.ConfigName()
	d, err := r.ResolveStream(ConfigStreamName(cname.String()))
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.OpenObject(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	rd, err := rsss.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var want []digest.Digest
	for _, id := range cfg.RootFS.DiffIDs {
		ls, err := r.ResolveStream(LayerStreamName(id.String()))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ls)
	}
	want = append(want, digest.MustNew(r.Algorithm(), mustHex(t, res.Image)))
	if got := rd.StreamRefs(); !slices.Equal(got, want) {
		t.Errorf("configuration stream refs %v, want the layers then the image %v", got, want)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
