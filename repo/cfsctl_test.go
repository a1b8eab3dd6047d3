package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/repo/splitstream"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

// putStream stores a split stream of head, the object of content and tail,
// linked as composefs-rs links them: streams/ID to its object and
// streams/refs/NAME to streams/ID. It returns the object's digest.
func putStream(t *testing.T, r *Repo, id, name string, head, content, tail []byte) digest.Digest {
	t.Helper()
	w := r.NewObjectWriter()
	d, err := w.Put(content)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := splitstream.NewWriter(r.Algorithm(), splitstream.ContentTypeOCILayer)
	if err != nil {
		t.Fatal(err)
	}
	sw.Write(head)
	if err := sw.WriteExternal(d, uint64(len(content))); err != nil {
		t.Fatal(err)
	}
	sw.Write(tail)
	f, err := w.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Finish(f); err != nil {
		t.Fatal(err)
	}
	sd, err := f.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	streams := filepath.Join(r.Dir(), "streams")
	os.MkdirAll(filepath.Join(streams, "refs"), 0o755)
	if err := os.Symlink("../objects/"+sd.ObjectPath(), filepath.Join(streams, id)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+id, filepath.Join(streams, "refs", name)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCat(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			content := bytes.Repeat([]byte("object content "), 1000)
			d := putStream(t, r, "oci-layer-sha256:0123", "layer", []byte("head|"), content, []byte("|tail"))
			want := "head|" + string(content) + "|tail"
			for _, name := range []string{"oci-layer-sha256:0123", "refs/layer"} {
				var b bytes.Buffer
				if err := r.Cat(ctx, name, &b); err != nil || b.String() != want {
					t.Errorf("Cat(%s): %d bytes, %v; want the stream's %d", name, b.Len(), err, len(want))
				}
			}
			for _, name := range []string{d.Hex(), alg.String() + ":" + d.Hex()} {
				var b bytes.Buffer
				if err := r.Cat(ctx, name, &b); err != nil || !bytes.Equal(b.Bytes(), content) {
					t.Errorf("Cat(%s): %d bytes, %v; want the object's %d", name, b.Len(), err, len(content))
				}
			}
			if err := r.Cat(ctx, "nope", &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
				t.Errorf("Cat(nope): %v", err)
			}
			if err := r.Cat(ctx, "../meta.json", &bytes.Buffer{}); err == nil {
				t.Errorf("Cat(../meta.json) succeeded")
			}
			os.Symlink("../../../etc", filepath.Join(r.Dir(), "streams", "evil"))
			if err := r.Cat(ctx, "evil", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "outside") {
				t.Errorf("Cat of a link out of the repository: %v", err)
			}

			// A corrupt object: an error naming it, and nothing written.
			obj := r.ObjectPath(d)
			data := bytes.Clone(content)
			data[7] ^= 1
			os.Chmod(obj, 0o644)
			if err := os.WriteFile(obj, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := r.Cat(ctx, "refs/layer", &b); !errors.Is(err, ErrCorrupt) || b.Len() != 0 {
				t.Errorf("Cat with a corrupt object: %v, %d bytes written", err, b.Len())
			}
			if err := r.Cat(ctx, d.Hex(), &b); !errors.Is(err, ErrCorrupt) || b.Len() != 0 {
				t.Errorf("Cat of a corrupt object: %v, %d bytes written", err, b.Len())
			}
			os.Remove(obj)
			if err := r.Cat(ctx, "refs/layer", &b); !errors.Is(err, ErrNotFound) || b.Len() != 0 {
				t.Errorf("Cat with a missing object: %v, %d bytes written", err, b.Len())
			}

			names, err := r.Streams()
			if err != nil || strings.Join(names, " ") != "evil oci-layer-sha256:0123 refs/layer" {
				t.Errorf("Streams() = %q, %v", names, err)
			}
		})
	}
}

// ReadDir and ImageID give, without storing anything, the digest
// CreateImage gives the same directory, in either algorithm.
func TestReadDirImageID(t *testing.T) {
	src := sampleTree(t, 5)
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			root, err := ReadDir(ctx, src, alg, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			opts := image.Options{MinVersion: 1, MaxVersion: 1}
			id, err := ImageID(root, alg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(filepath.Join(r.Dir(), "objects")); len(ents) != 0 {
				t.Errorf("ReadDir stored objects")
			}
			res, err := r.CreateImage(ctx, src, "x", CreateOptions{Image: &opts})
			if err != nil {
				t.Fatal(err)
			}
			if res.Image != id.Hex() {
				t.Errorf("ImageID %s, CreateImage %s", id, res.Image)
			}
		})
	}
	if _, err := ReadDir(ctx, filepath.Join(src, "nope"), algorithms()[0], scan.Options{}); err == nil {
		t.Errorf("ReadDir of a missing directory succeeded")
	}
}

func TestCreateImageEdited(t *testing.T) {
	r := newRepo(t, algorithms()[0])
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "kept"), bytes.Repeat([]byte("k"), 100), 0o644)
	os.WriteFile(filepath.Join(src, "dropped"), bytes.Repeat([]byte("d"), 100), 0o644)
	res, err := r.CreateImageEdited(ctx, src, "", CreateOptions{}, func(root *tree.Node) error {
		root.RemoveChild("dropped")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 1 {
		t.Errorf("%d objects stored, want 1 (the dropped file's content is not)", res.Objects)
	}
	boom := errors.New("boom")
	if _, err := r.CreateImageEdited(ctx, src, "", CreateOptions{}, func(*tree.Node) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("a failing edit: %v", err)
	}
}

// FsckWith(MetadataOnly) skips the objects' content: a corrupt object
// goes unnoticed, a missing one does not; streams are counted.
func TestFsckMetadataOnly(t *testing.T) {
	r := newRepo(t, algorithms()[0])
	src := sampleTree(t, 6)
	if _, err := r.CreateImage(ctx, src, "x", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	objs, err := r.ImageObjects("x")
	if err != nil || len(objs) < 2 {
		t.Fatalf("image objects %v, %v", objs, err)
	}
	putStream(t, r, "id", "name", []byte("h"), []byte("stream object content"), nil)
	res := fsckClean(t, r)
	if res.Streams != 2 {
		t.Errorf("%d streams checked, want 2", res.Streams)
	}
	d0, _ := r.ParseDigest(objs[0])
	obj := r.ObjectPath(d0)
	data, _ := os.ReadFile(obj)
	data[0] ^= 1
	os.Chmod(obj, 0o644)
	os.WriteFile(obj, data, 0o644)
	meta, err := r.FsckWith(ctx, FsckOptions{MetadataOnly: true})
	if err != nil || !meta.OK() || meta.Objects != 0 || meta.Images != 1 {
		t.Errorf("metadata-only fsck of a corrupt object: %+v, %v; want OK, no object checked, 1 image", meta, err)
	}
	if full, err := r.Fsck(ctx); err != nil || full.OK() {
		t.Errorf("full fsck of a corrupt object: %+v, %v; want a problem", full, err)
	}
	d1, _ := r.ParseDigest(objs[1])
	os.Remove(r.ObjectPath(d1))
	if meta, err := r.FsckWith(ctx, FsckOptions{MetadataOnly: true}); err != nil || meta.OK() {
		t.Errorf("metadata-only fsck of a missing object: %+v, %v; want a problem", meta, err)
	}
}
