package oci

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzLoad reads an image as a pull does from what a registry or a
// layout serves: a manifest or index (root, declared of media type
// declared), every manifest an index leads to (child), and the image's
// configuration, all arbitrary. Errors are fine; panics are not, nor an
// image whose manifest is no image manifest, or whose layers and diff IDs differ in
// number or are not sha256.
func FuzzLoad(f *testing.F) {
	const diffID = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + diffID + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + diffID + `","size":10}]}`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + diffID + `","size":100,"platform":{"os":"linux","architecture":"amd64"}}]}`
	config := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + diffID + `"]}}`
	f.Add([]byte(manifest), []byte(nil), []byte(config), "")
	f.Add([]byte(index), []byte(manifest), []byte(config), string(types.OCIImageIndex))
	f.Add([]byte(index), []byte(index), []byte(config), "")
	f.Add([]byte(manifest), []byte(nil), []byte(`{"rootfs":{"diff_ids":["md5:00"]}}`), string(types.DockerManifestSchema2))
	f.Fuzz(func(t *testing.T, root, child, config []byte, declared string) {
		get := func(context.Context, string, v1.Descriptor) ([]byte, error) { return child, nil }
		getBlob := func(context.Context, string, v1.Descriptor) ([]byte, error) { return config, nil }
		var s source
		d := v1.Descriptor{MediaType: types.MediaType(declared), Size: int64(len(root))}
		if err := s.load(context.Background(), get, getBlob, d, root, v1.Platform{OS: "linux", Architecture: "amd64"}); err != nil {
			return
		}
		if !s.mediaType.IsImage() {
			t.Fatalf("a %q taken for an image manifest", s.mediaType)
		}
		if len(s.layers) != len(s.diffIDs) {
			t.Fatalf("%d layers, %d diff IDs", len(s.layers), len(s.diffIDs))
		}
		for _, id := range s.diffIDs {
			if id.Algorithm != "sha256" || len(id.Hex) != 64 {
				t.Fatalf("diff ID %s taken", id)
			}
		}
	})
}

// FuzzArchive reads arbitrary docker save archives (openArchive: the
// archive's members indexed, manifest.json, the configuration and the
// layers' descriptors) and every layer they lead to. Errors are fine;
// panics and hangs are not.
func FuzzArchive(f *testing.F) {
	img := testImage(f, smallLayers(1))
	var good bytes.Buffer
	if err := tarball.Write(must(name.NewTag("example.org/gocfs/test:v1")), img, &good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes(), "")
	f.Add(good.Bytes(), "example.org/gocfs/test:v1")
	f.Add(makeTar(f, []member{fileM("manifest.json", 0o644, []byte(`[{"Config":"c.json","Layers":["l.tar"]}]`)), symlinkM("l.tar", "l.tar")}), "")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, archive []byte, tag string) {
		file := filepath.Join(dir, "image.tar")
		if err := os.WriteFile(file, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		ref := file
		if tag != "" {
			ref += ":" + tag
		}
		src, err := openArchive(ref)
		if err != nil {
			return
		}
		defer src.close()
		if len(src.layers) != len(src.diffIDs) {
			t.Fatalf("%d layers, %d diff IDs", len(src.layers), len(src.diffIDs))
		}
		for i := range src.layers {
			if rc, err := src.openLayer(i); err == nil {
				io.Copy(io.Discard, io.LimitReader(rc, 1<<20))
				rc.Close()
			}
		}
	})
}
