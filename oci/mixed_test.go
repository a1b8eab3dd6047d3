package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
	"github.com/gocfs/gocfs/tree"
)

// rsFixture lays out, by hand, a repository as composefs-rs 0.9 leaves it
// after `cfsctl init` (SHA-512, V1 EROFS) and `cfsctl oci pull` of a
// one-layer image tagged quay.io/app:1, plus a layer stream no tag reaches.
// Each fact is from composefs-rs's source, cited where it is used.
type rsFixture struct {
	dir, diffID string
	tar         []byte
	content     digest.Digest // the layer's one file, an object
	orphan      digest.Digest // the unreachable layer's object
	image       digest.Digest // the EROFS image the configuration names
	artifact    digest.Digest // a referrer's manifest object
}

const rsAlg = fsverity.SHA512

// putObject writes data as objects/XX/REST, named by its fs-verity digest
// (repository.rs ensure_object; format_object_path "objects/{XX/REST}").
func (f *rsFixture) putObject(t *testing.T, data []byte) digest.Digest {
	t.Helper()
	d := digest.MustNew(rsAlg, fsverity.Sum(data, rsAlg))
	p := filepath.Join(f.dir, "objects", d.ObjectPath())
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// link makes the symlink rel -> target (repository.rs symlink_impl: relative,
// one "../" per directory of rel below the common ancestor).
func (f *rsFixture) link(t *testing.T, rel, target string) {
	t.Helper()
	p := filepath.Join(f.dir, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// putStream stores a finished split stream as an object and links it as
// streams/NAME -> ../objects/XX/REST (repository.rs write_stream).
func (f *rsFixture) putStream(t *testing.T, w *rsss.Writer, name string) digest.Digest {
	t.Helper()
	var buf bytes.Buffer
	if _, err := w.Finish(&buf); err != nil {
		t.Fatal(err)
	}
	d := f.putObject(t, buf.Bytes())
	f.link(t, "streams/"+name, "../objects/"+d.ObjectPath())
	return d
}

func newRSFixture(t *testing.T) *rsFixture {
	f := &rsFixture{dir: filepath.Join(t.TempDir(), "repo")}
	// meta.json of `cfsctl init` (composefs-ctl lib.rs: --algorithm
	// defaults to fsverity-sha512-12, --erofs-version to V1), written by
	// RepoMetadata::new_with_formats + to_json (repository.rs): v1_erofs
	// in read-only-compatible, erofs_formats {"default": 1}.
	os.MkdirAll(f.dir, 0o755)
	meta := `{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}
`
	if err := os.WriteFile(filepath.Join(f.dir, "meta.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	content := randBytes(41, 5000)
	f.tar = makeTar(t, []member{dirM("usr/", 0o755), fileM("usr/hello", 0o644, content)})
	f.diffID = fmt.Sprintf("sha256:%x", sha256.Sum256(f.tar))
	f.content = f.putObject(t, content)
	// The layer: content type "ocilayer" (skopeo.rs
	// TAR_LAYER_CONTENT_TYPE), headers inline, the 5000-byte content
	// external (> INLINE_CONTENT_MAX_V0, 64), named oci-layer-DIFFID
	// (lib.rs layer_identifier).
	lw, _ := rsss.NewWriter(rsAlg, rsss.ContentTypeOCILayer)
	lw.Write(f.tar[:1024])
	lw.WriteExternal(f.content, uint64(len(content)))
	lw.Write(f.tar[1024+5000:])
	layer := f.putStream(t, lw, "oci-layer-"+f.diffID)
	// The EROFS image, linked images/HEX -> ../objects/XX/REST
	// (repository.rs write_image), no images/refs name: composefs-oci keeps
	// it by the configuration's named reference. It is the V1 image of
	// the layer's tree after transform_for_oci (generic_tree.rs): the root
	// has /usr's metadata.
	f.image = f.putObject(t, rsImage(t, content))
	f.link(t, "images/"+f.image.Hex(), "../objects/"+f.image.ObjectPath())
	// The configuration: "ociconfg", named refs diff ID -> layer stream and
	// composefs.image.v1 -> the image (lib.rs write_config_raw,
	// IMAGE_REF_KEY_V1), the JSON external, named oci-config-DIGEST.
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, f.diffID))
	cd := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	cw, _ := rsss.NewWriter(rsAlg, rsss.ContentTypeOCIConfig)
	cw.AddNamedStreamRef(f.diffID, layer)
	cw.AddNamedStreamRef("composefs.image.v1", f.image)
	cw.WriteExternal(f.putObject(t, config), uint64(len(config)))
	cstream := f.putStream(t, cw, "oci-config-"+cd)
	// The manifest: "ocimanif", named refs config:DIGEST and diff ID
	// (oci_image.rs write_manifest), named oci-manifest-DIGEST, tagged
	// streams/refs/oci/ENCODED -> ../../oci-manifest-DIGEST (oci_ref_path,
	// encode_tag: "/" as %2F).
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, len(config), f.diffID, len(f.tar)))
	md := fmt.Sprintf("sha256:%x", sha256.Sum256(manifest))
	mw, _ := rsss.NewWriter(rsAlg, rsss.ContentTypeOCIManifest)
	mw.AddNamedStreamRef("config:"+cd, cstream)
	mw.AddNamedStreamRef(f.diffID, layer)
	mw.WriteExternal(f.putObject(t, manifest), uint64(len(manifest)))
	f.putStream(t, mw, "oci-manifest-"+md)
	f.link(t, "streams/refs/oci/quay.io%2Fapp:1", "../../oci-manifest-"+md)
	// A referrer: an artifact manifest whose subject is the image,
	// indexed as streams/refs/oci-referrers/ENC(subject)/ENC(artifact) ->
	// ../../../oci-manifest-ARTIFACT (oci_image.rs add_referrer,
	// REFERRER_REF_PREFIX; repository.rs name_stream). composefs-rs's gc
	// takes every stream reference as a root, this one too.
	artifact := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/example","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}}`, md, len(manifest)))
	ad := fmt.Sprintf("sha256:%x", sha256.Sum256(artifact))
	aw, _ := rsss.NewWriter(rsAlg, rsss.ContentTypeOCIManifest)
	f.artifact = f.putObject(t, artifact)
	aw.WriteExternal(f.artifact, uint64(len(artifact)))
	f.putStream(t, aw, "oci-manifest-"+ad)
	f.link(t, "streams/refs/oci-referrers/"+encodeTag(md)+"/"+encodeTag(ad), "../../../oci-manifest-"+ad)
	// A layer no tag reaches (its image was untagged).
	orphan := randBytes(42, 3000)
	f.orphan = f.putObject(t, orphan)
	ow, _ := rsss.NewWriter(rsAlg, rsss.ContentTypeOCILayer)
	ow.WriteExternal(f.orphan, uint64(len(orphan)))
	f.putStream(t, ow, fmt.Sprintf("oci-layer-sha256:%x", sha256.Sum256(orphan)))
	return f
}

// rsImage returns the V1 composefs image composefs-rs makes of the
// fixture's layer (usr/ and usr/hello with content, both mtime t0, owner
// 0:0): the tree built here by hand, the root given /usr's metadata
// (transform_for_oci), each file its object's SHA-512 digest.
func rsImage(t *testing.T, content []byte) []byte {
	t.Helper()
	dir := func() *tree.Node {
		n := tree.New(tree.ModeDir | 0o755)
		n.MtimeSec = t0.Unix()
		return n
	}
	root, usr := dir(), dir()
	hello := tree.New(tree.ModeRegular | 0o644)
	hello.MtimeSec, hello.Size = t0.Unix(), uint64(len(content))
	d := digest.MustNew(rsAlg, fsverity.Sum(content, rsAlg))
	hello.Payload, hello.Digest = d.ObjectPath(), d.Bytes()
	if err := root.AddChild("usr", usr); err != nil {
		t.Fatal(err)
	}
	if err := usr.AddChild("hello", hello); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := image.Write(&buf, root, image.Options{MinVersion: 1, MaxVersion: 1}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gc and fsck over a repository composefs-rs pulled into and gocfs pulled
// into too: gc removes only what neither keeps, fsck finds a missing
// object where composefs-rs would (the layer stream and the image using
// it).
func TestMixedRepository(t *testing.T) {
	requireRoot(t)
	f := newRSFixture(t)
	r, err := repo.Open(f.dir, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mine, err := Pull(context.Background(), r, "oci:"+writeLayout(t, testImage(t, testLayers()), "x")+":x", PullOptions{Name: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := Images(r)
	if err != nil || len(infos) != 2 || infos[0].Name != "mine" || infos[1].Name != "quay.io/app:1" || infos[1].Image != f.image.Hex() || infos[1].Error != "" {
		t.Fatalf("Images: %+v, %v", infos, err)
	}
	var out bytes.Buffer
	if err := WriteLayer(r, f.diffID, &out); err != nil || !bytes.Equal(out.Bytes(), f.tar) {
		t.Errorf("composefs-rs's layer written back: %v", err)
	}
	// gocfs computes the image ID composefs-rs's pull recorded, and
	// mounts that image.
	if id, err := ComputeID(context.Background(), r, "quay.io/app:1"); err != nil || id != f.image {
		t.Errorf("compute-id of composefs-rs's image: %s, %v; its configuration names %s", id.Hex(), err, f.image.Hex())
	}
	mnt := t.TempDir()
	if _, err := Mount(context.Background(), r, "quay.io/app:1", mnt, mount.Options{Verity: mount.VerityOff}); err != nil {
		t.Fatalf("mount of composefs-rs's image: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "usr/hello"))
	mount.Unmount(mnt)
	if err != nil || !bytes.Equal(got, randBytes(41, 5000)) {
		t.Errorf("usr/hello of the mounted image: %v", err)
	}
	checkFsck(t, r)
	gc, err := r.GC(context.Background(), repo.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orphanStream := fmt.Sprintf("streams/oci-layer-sha256:%x", sha256.Sum256(randBytes(42, 3000)))
	if gc.ObjectsRemoved != 2 || !slices.Equal(gc.StreamsPruned, []string{orphanStream}) || len(gc.ImagesRemoved) != 0 || gc.ImagesKept != 2 {
		t.Errorf("gc: %+v", gc)
	}
	if _, err := os.Stat(r.ObjectPath(f.orphan)); err == nil {
		t.Errorf("the unreachable layer's object is still there")
	}
	for _, d := range []digest.Digest{f.content, f.image, f.artifact} {
		if _, err := os.Stat(r.ObjectPath(d)); err != nil {
			t.Errorf("gc removed %s: %v", d, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "images", f.image.Hex())); err != nil {
		t.Errorf("gc removed the link of the image the configuration keeps: %v", err)
	}
	if _, err := EnsureImage(context.Background(), r, "mine"); err != nil || mine.Image == "" {
		t.Errorf("gocfs's own image after gc: %v", err)
	}
	checkFsck(t, r)

	// A missing object: the layer stream and the image that use it are
	// damaged, as composefs-rs's fsck reports them.
	if err := os.Remove(r.ObjectPath(f.content)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var streamDamaged, imageDamaged bool
	for _, p := range res.Problems {
		switch {
		case p.Kind == repo.KindStreamDamaged && p.Path == "streams/oci-layer-"+f.diffID:
			streamDamaged = true
		case p.Kind == repo.KindImageDamaged && p.Image == f.image.Hex():
			imageDamaged = true
		}
	}
	if !streamDamaged || !imageDamaged {
		t.Errorf("fsck after removing the layer's object: %+v", res.Problems)
	}
}
