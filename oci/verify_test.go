package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"

	"github.com/gocfs/gocfs/repo"
)

// smallLayers are the layers of a small test image; seed makes the
// contents of one image differ from another's.
func smallLayers(seed uint64) [][]member {
	return [][]member{
		{dirM("etc/", 0o755), fileM("etc/a", 0o644, randBytes(seed, 5000)), fileM("etc/seed", 0o644, []byte{byte(seed)})},
		{fileM("usr/b", 0o644, textBytes(seed+1, 20000))},
	}
}

// sha256Hash returns data's digest.
func sha256Hash(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// blobPath is where a layout keeps a blob.
func blobPath(dir string, h v1.Hash) string {
	return filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
}

// putBlob adds data to a layout as a blob.
func putBlob(t *testing.T, dir string, data []byte) v1.Hash {
	t.Helper()
	h := sha256Hash(data)
	if err := os.WriteFile(blobPath(dir, h), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// replaceBlob overwrites the blob h of a layout with data.
func replaceBlob(t *testing.T, dir string, h v1.Hash, data []byte) {
	t.Helper()
	p := blobPath(dir, h)
	os.Remove(p)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// padTo pads JSON with trailing spaces to n bytes (it stays the same
// JSON).
func padTo(t *testing.T, data []byte, n int) []byte {
	t.Helper()
	if len(data) > n {
		t.Fatalf("cannot pad %d bytes to %d", len(data), n)
	}
	return append(bytes.Clone(data), bytes.Repeat([]byte(" "), n-len(data))...)
}

// layoutIndex reads a layout's index.json.
func layoutIndex(t *testing.T, dir string) *v1.IndexManifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// writeLayoutIndex rewrites a layout's index.json.
func writeLayoutIndex(t *testing.T, dir string, im *v1.IndexManifest) {
	t.Helper()
	data, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkNothingNamed checks that a refused pull left nothing named: no
// image, no reference, no record, no split stream but those of layers
// allowed, and that fsck is clean.
func checkNothingNamed(t *testing.T, r *repo.Repo, allowedLayers ...string) {
	t.Helper()
	for _, d := range []string{"images", "streams"} {
		top := filepath.Join(r.Dir(), d)
		filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(r.Dir(), p)
			for _, a := range allowedLayers {
				if rel == "streams/"+LayerStreamName(a) {
					return nil
				}
			}
			t.Errorf("the refused pull left %s", rel)
			return nil
		})
	}
	if infos, err := Images(r); err != nil || len(infos) != 0 {
		t.Errorf("images after a refused pull: %v %+v", err, infos)
	}
	checkFsck(t, r)
}

// expectRefused pulls src, which must be refused with an error wrapping
// want and containing every string of has.
func expectRefused(t *testing.T, r *repo.Repo, src string, opts PullOptions, want error, has ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Pull(ctx, r, src, opts)
	if err == nil {
		t.Fatalf("pull of %s succeeded", src)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %q does not wrap %q", err, want)
	}
	for _, s := range has {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	t.Logf("refused: %v", err)
	return err
}

// must returns v, for test setup that cannot fail (it panics if it does).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("test setup: %v", err))
	}
	return v
}

// TestLayoutSubstitutedManifest: index.json names the manifest of image A;
// the blob under that digest holds image B's manifest (whose blobs are
// all in the layout). Unchecked, B would be pulled as A.
func TestLayoutSubstitutedManifest(t *testing.T) {
	requireRoot(t)
	a, b := testImage(t, smallLayers(1)), testImage(t, smallLayers(2))
	dir := writeLayout(t, a, "v1")
	p := must(layout.FromPath(dir))
	if err := p.WriteImage(b); err != nil {
		t.Fatal(err)
	}
	ma, mb := must(a.RawManifest()), must(b.RawManifest())
	da := must(a.Digest())
	sub := padTo(t, mb, len(ma))
	replaceBlob(t, dir, da, sub)

	r := newTestRepo(t)
	expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "manifest", da.String(), sha256Hash(sub).String())
	checkNothingNamed(t, r)

	// index.json saying the wrong size is refused too.
	replaceBlob(t, dir, da, ma)
	im := layoutIndex(t, dir)
	im.Manifests[0].Size++
	writeLayoutIndex(t, dir, im)
	expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, da.String(), "bytes")
	checkNothingNamed(t, r)
}

// TestLayoutSubstitutedIndex: index.json names an index listing A; the
// blob holds an index listing B.
func TestLayoutSubstitutedIndex(t *testing.T) {
	requireRoot(t)
	a, b := testImage(t, smallLayers(1)), testImage(t, smallLayers(2))
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	ia := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &plat}})
	ib := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &plat}})
	dir := filepath.Join(t.TempDir(), "layout")
	p := must(layout.Write(dir, empty.Index))
	if err := p.AppendIndex(ia, layout.WithAnnotations(map[string]string{refNameAnnotation: "multi"})); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteIndex(ib); err != nil {
		t.Fatal(err)
	}
	// The index.json WriteIndex rewrote: back to naming ia only.
	im := layoutIndex(t, dir)
	var keep []v1.Descriptor
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == "multi" {
			keep = append(keep, d)
		}
	}
	im.Manifests = keep
	writeLayoutIndex(t, dir, im)

	opts := PullOptions{Platform: "linux/amd64"}
	r := newTestRepo(t)
	// The layout is good as it is.
	res, err := Pull(context.Background(), r, "oci:"+dir+":multi", opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := must(a.Digest()); res.ManifestDigest != want.String() {
		t.Fatalf("pulled %s, want %s", res.ManifestDigest, want)
	}

	ra, rb := must(ia.RawManifest()), must(ib.RawManifest())
	da := must(ia.Digest())
	sub := padTo(t, rb, len(ra))
	replaceBlob(t, dir, da, sub)
	r = newTestRepo(t)
	expectRefused(t, r, "oci:"+dir+":multi", opts, ErrDigestMismatch, "index", da.String(), sha256Hash(sub).String())
	checkNothingNamed(t, r)
}

// rewriteManifest replaces the manifest of the layout's only image by
// edit's version of it, and points index.json at the new one.
func rewriteManifest(t *testing.T, dir string, edit func(*v1.Manifest)) {
	t.Helper()
	im := layoutIndex(t, dir)
	d := &im.Manifests[0]
	m, err := v1.ParseManifest(must(os.Open(blobPath(dir, d.Digest))))
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	data := must(json.Marshal(m))
	d.Digest, d.Size = putBlob(t, dir, data), int64(len(data))
	writeLayoutIndex(t, dir, im)
}

// TestLayoutConfig: a configuration must have its descriptor's digest and
// size.
func TestLayoutConfig(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(1))
	cd := must(img.ConfigName())
	raw := must(img.RawConfigFile())

	t.Run("size", func(t *testing.T) {
		dir := writeLayout(t, img, "v1")
		rewriteManifest(t, dir, func(m *v1.Manifest) { m.Config.Size++ })
		r := newTestRepo(t)
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "configuration", cd.String(), "bytes")
		checkNothingNamed(t, r)
	})
	t.Run("substituted", func(t *testing.T) {
		dir := writeLayout(t, img, "v1")
		sub := bytes.Replace(raw, []byte(`"gocfs"`), []byte(`"gocfx"`), 1)
		if bytes.Equal(sub, raw) {
			t.Fatal("no label to change")
		}
		replaceBlob(t, dir, cd, sub)
		r := newTestRepo(t)
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "configuration", cd.String(), sha256Hash(sub).String())
		checkNothingNamed(t, r)
	})
}

// TestLayoutLayer: a layer blob must have its descriptor's digest and
// size; a longer one is refused before it is read.
func TestLayoutLayer(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(1))
	other := testImage(t, smallLayers(2))
	ls, ols := must(img.Layers()), must(other.Layers())
	d0 := must(ls[0].Digest())
	orig := must(io.ReadAll(must(ls[0].Compressed())))

	t.Run("substituted", func(t *testing.T) {
		dir := writeLayout(t, img, "v1")
		sub := must(io.ReadAll(must(ols[0].Compressed())))
		replaceBlob(t, dir, d0, sub)
		r := newTestRepo(t)
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), sha256Hash(sub).String())
		checkNothingNamed(t, r)
	})
	t.Run("shorter", func(t *testing.T) {
		dir := writeLayout(t, img, "v1")
		sub := orig[:len(orig)-10]
		replaceBlob(t, dir, d0, sub)
		r := newTestRepo(t)
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), sha256Hash(sub).String())
		checkNothingNamed(t, r)
	})
	t.Run("longer", func(t *testing.T) {
		// The blob goes on for 100 GB past its content (a hole: no disk
		// space): refused at once, not after reading it.
		dir := writeLayout(t, img, "v1")
		f := must(os.OpenFile(blobPath(dir, d0), os.O_WRONLY, 0))
		if err := f.Truncate(100 << 30); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r := newTestRepo(t)
		start := time.Now()
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), "longer")
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("refusing took %s", el)
		}
		checkNothingNamed(t, r)
	})
}

// rewriteTar rewrites the tar archive file: edit may change each
// member's header and returns its content.
func rewriteTar(t *testing.T, file string, edit func(hdr *tar.Header, data []byte) []byte) {
	t.Helper()
	in := must(os.ReadFile(file))
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data := edit(hdr, must(io.ReadAll(tr)))
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceMember returns an edit for rewriteTar that replaces the content
// of the member called name.
func replaceMember(name string, content []byte) func(*tar.Header, []byte) []byte {
	return func(hdr *tar.Header, data []byte) []byte {
		if hdr.Name == name {
			return content
		}
		return data
	}
}

// archiveManifest reads the manifest.json of a docker archive.
func archiveManifest(t *testing.T, file string) []archiveImage {
	t.Helper()
	m := must(tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) }))
	var out []archiveImage
	for _, d := range m {
		out = append(out, archiveImage{Config: d.Config, RepoTags: d.RepoTags, Layers: d.Layers})
	}
	return out
}

// TestArchiveVerified: a docker archive's configuration must have the
// digest its file name gives, its layers theirs and their diff IDs.
func TestArchiveVerified(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(1))
	tag := must(name.NewTag("example.org/gocfs/test:v1"))
	write := func(t *testing.T) (string, archiveImage) {
		file := filepath.Join(t.TempDir(), "image.tar")
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			t.Fatal(err)
		}
		return file, archiveManifest(t, file)[0]
	}
	raw := must(img.RawConfigFile())
	ls := must(img.Layers())
	d0 := must(ls[0].Digest())
	tar0 := must(io.ReadAll(must(ls[0].Uncompressed())))

	t.Run("good", func(t *testing.T) {
		file, _ := write(t)
		r := newTestRepo(t)
		res, err := Pull(context.Background(), r, "docker-archive:"+file, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(t.TempDir(), "rootfs")
		extract(t, want, smallLayers(1))
		checkPulled(t, r, res, want)
		checkFsck(t, r)
	})
	t.Run("config", func(t *testing.T) {
		file, m := write(t)
		sub := bytes.Replace(raw, []byte(`"gocfs"`), []byte(`"gocfx"`), 1)
		rewriteTar(t, file, replaceMember(m.Config, sub))
		r := newTestRepo(t)
		expectRefused(t, r, "docker-archive:"+file, PullOptions{}, ErrDigestMismatch, "configuration",
			must(img.ConfigName()).String(), sha256Hash(sub).String())
		checkNothingNamed(t, r)
	})
	t.Run("recompressed layer", func(t *testing.T) {
		// The same tar archive (the same diff ID) in another blob than
		// the one the file name gives.
		file, m := write(t)
		var buf bytes.Buffer
		zw := must(gzip.NewWriterLevel(&buf, gzip.BestSpeed))
		zw.Write(tar0)
		zw.Close()
		rewriteTar(t, file, replaceMember(m.Layers[0], buf.Bytes()))
		r := newTestRepo(t)
		expectRefused(t, r, "docker-archive:"+file, PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), sha256Hash(buf.Bytes()).String())
		checkNothingNamed(t, r)
	})
	t.Run("substituted layer", func(t *testing.T) {
		// Another layer, under a name that gives no digest: the diff ID
		// refuses it.
		file, m := write(t)
		other := makeTar(t, smallLayers(2)[0])
		m.Layers[0] = "0123/layer.tar" // docker's own naming before docker 25
		rewriteTar(t, file, func(hdr *tar.Header, data []byte) []byte {
			switch hdr.Name {
			case "manifest.json":
				return must(json.Marshal([]archiveImage{m}))
			case archiveManifest(t, file)[0].Layers[0]:
				hdr.Name = m.Layers[0]
				return other
			}
			return data
		})
		r := newTestRepo(t)
		diffID := must(ls[0].DiffID())
		expectRefused(t, r, "docker-archive:"+file, PullOptions{}, ErrDigestMismatch, "layer 0", diffID.String(), sha256Hash(other).String())
		checkNothingNamed(t, r)
	})
}

// TestLayoutSpecialFiles: a FIFO or a directory put in the place of a
// blob or of index.json is refused at once, not opened for reading (a
// FIFO used to hang the pull forever).
func TestLayoutSpecialFiles(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(1))
	d0 := must(must(img.Layers())[0].Digest())
	for _, c := range []struct {
		name string
		path func(dir string) string
		make func(p string) error
	}{
		{"fifo layer", func(dir string) string { return blobPath(dir, d0) }, func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"fifo index", func(dir string) string { return filepath.Join(dir, "index.json") }, func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"directory layer", func(dir string) string { return blobPath(dir, d0) }, func(p string) error { return os.Mkdir(p, 0o755) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeLayout(t, img, "v1")
			p := c.path(dir)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := c.make(p); err != nil {
				t.Fatal(err)
			}
			r := newTestRepo(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := Pull(ctx, r, "oci:"+dir+":v1", PullOptions{})
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || time.Since(start) > 10*time.Second {
				t.Fatalf("pull with a %s: %v after %v; want a prompt refusal naming it not a regular file", c.name, err, time.Since(start))
			}
			t.Logf("refused: %v", err)
			checkNothingNamed(t, r)
		})
	}
}

// TestErrorsBounded: a layer whose member paths are 20 KB long (10,000
// components) is refused with a message of bounded length that still
// names the member.
func TestErrorsBounded(t *testing.T) {
	requireRoot(t)
	deep := strings.Repeat("d/", 10000)
	for _, c := range []struct {
		name string
		ms   []member
	}{
		{"hard link to nothing", []member{linkM(deep+"h", strings.Repeat("e/", 10000)+"x")}},
		{"through a file", []member{fileM("f", 0o644, []byte("1")), fileM("f/"+deep+"g", 0o644, []byte("2"))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeLayout(t, testImage(t, [][]member{c.ms}), "v1")
			r := newTestRepo(t)
			_, err := Pull(context.Background(), r, "oci:"+dir+":v1", PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if msg := err.Error(); len(msg) > 1000 || !strings.Contains(msg, "d/d/d/") {
				t.Errorf("error of %d bytes (want at most 1000, naming the member): %.300s", len(msg), msg)
			}
		})
	}
}

// TestLayoutLayerFailsBeforeLaterLayersStart: with more layers than pull
// imports at once, the first layer is refused while the layers after it
// have not started yet; they are given up (once, a pull that failed this
// way dereferenced the not-yet-made cancel function of a layer that had
// not started and crashed the process), and nothing is named.
func TestLayoutLayerFailsBeforeLaterLayersStart(t *testing.T) {
	requireRoot(t)
	var layers [][]member
	layers = append(layers, []member{fileM("a", 0o644, []byte("first"))})
	for i := range 2*parallelLayers() + 1 {
		layers = append(layers, []member{fileM(fmt.Sprintf("big%d", i), 0o644, randBytes(uint64(i+10), 4<<20))})
	}
	img := testImage(t, layers)
	d0 := must(must(img.Layers())[0].Digest())
	for range 3 {
		dir := writeLayout(t, img, "v1")
		sub := []byte("not the layer")
		replaceBlob(t, dir, d0, sub)
		r := newTestRepo(t)
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{}, ErrDigestMismatch, "layer 0", d0.String())
		checkNothingNamed(t, r)
	}
}

// A verifier that hashes with the archive keeps at most about
// maxPending bytes of a blob whose archive is slow to come out (here:
// none comes at all), and checks the blob the same: its digest and size
// right, then one byte changed.
func TestVerifierDeferredBounded(t *testing.T) {
	blob := randBytes(7, 5<<20)
	for _, flip := range []bool{false, true} {
		data := bytes.Clone(blob)
		if flip {
			data[len(data)/2] ^= 1
		}
		d := v1.Descriptor{Digest: sha256Hash(blob), Size: int64(len(blob))}
		v, err := newVerifier("blob", d, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !v.deferHash() {
			t.Fatal("a SHA-256 verifier does not defer")
		}
		buf := make([]byte, 64<<10)
		for {
			_, err := v.Read(buf)
			if len(v.pending) > maxPending+len(buf) {
				t.Fatalf("%d bytes pending", len(v.pending))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !v.ended() {
			t.Fatal("not ended at io.EOF")
		}
		err = v.checkDeferred()
		if flip != (err != nil) || flip && !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("changed %v: %v", flip, err)
		}
		if want := sha256.Sum256(nil); !bytes.Equal(v.archiveSum(), want[:]) {
			t.Errorf("archive sum %x, want the empty one", v.archiveSum())
		}
	}
}
