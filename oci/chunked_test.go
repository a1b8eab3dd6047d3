package oci

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/repo"
)

// The zstd:chunked images of these tests are made by Debian's skopeo
// (1.9: containers/storage 1.43's pkg/chunked/compressor) from images of
// uncompressed layers built with archive/tar, whose archives end right
// after the two zero blocks (as tar -b 1 makes them): skopeo 1.9's
// conversion drops a tar's trailing padding, which would change the diff
// ID.

// skopeoBinary returns skopeo, installing Debian's package if it is
// missing (scripts/install-deps.sh installs it for CI); the test is
// skipped only if it can't be installed.
func skopeoBinary(t testing.TB) string {
	t.Helper()
	skopeoOnce.Do(func() {
		if p, err := exec.LookPath("skopeo"); err == nil {
			skopeoPath = p
			return
		}
		if os.Geteuid() != 0 {
			skopeoErr = "skopeo is not installed, and installing it needs root"
			return
		}
		cmd := exec.Command("apt-get", "install", "-y", "-q", "--no-install-recommends", "skopeo")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			exec.Command("apt-get", "update", "-q").Run()
			out, err = cmd.CombinedOutput()
		}
		if p, lerr := exec.LookPath("skopeo"); lerr == nil {
			skopeoPath = p
			return
		}
		skopeoErr = fmt.Sprintf("skopeo could not be installed (%v)\n%s", err, out)
	})
	if skopeoPath == "" {
		t.Skip(skopeoErr)
	}
	return skopeoPath
}

var (
	skopeoOnce sync.Once
	skopeoPath string
	skopeoErr  string
)

// pushChunked pushes an image of the layers to the registry as ref
// (repository:tag), converted by skopeo to zstd:chunked, and returns the
// full reference.
func pushChunked(t testing.TB, reg *registry, layers [][]member, ref string) string {
	t.Helper()
	bin := skopeoBinary(t)
	img := empty.Image
	for _, ms := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(makeTar(t, ms), types.OCIUncompressedLayer)); err != nil {
			t.Fatal(err)
		}
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	dir := writeLayout(t, img, "src")
	full := reg.addr + "/" + ref
	out, err := exec.Command(bin, "copy", "--quiet", "--dest-tls-verify=false", "--dest-compress",
		"--dest-compress-format", "zstd:chunked", "oci:"+dir+":src", "docker://"+full).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	return full
}

// noRanges is a transport that takes the Range header off blob requests:
// the registry then sends whole blobs, and pulls are full pulls.
type noRanges struct{ inner http.RoundTripper }

func (n noRanges) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Range") != "" && strings.Contains(req.URL.Path, "/blobs/") {
		req = req.Clone(req.Context())
		req.Header.Del("Range")
	}
	return n.inner.RoundTrip(req)
}

// fullPull pulls ref whole (no range requests) into a new repository.
func fullPull(t testing.TB, ref string) *PullResult {
	t.Helper()
	res, err := Pull(context.Background(), newTestRepo(t), ref, PullOptions{Name: "full", Transport: noRanges{http.DefaultTransport}})
	if err != nil {
		t.Fatalf("full pull of %s: %v", ref, err)
	}
	for _, l := range res.Layers {
		if l.Partial {
			t.Fatalf("full pull of %s: layer %s pulled in part", ref, l.DiffID)
		}
	}
	return res
}

// fsckClean fails the test unless the repository and its OCI images are
// clean.
func fsckClean(t testing.TB, r *repo.Repo) {
	t.Helper()
	res, err := Fsck(context.Background(), r, "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("fsck: %+v", res)
	}
}

func TestPullChunked(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	ref := pushChunked(t, reg, testLayers(), "gocfs/chunked:v1")
	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, ref, PullOptions{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Layers {
		if !l.Partial {
			t.Errorf("layer %s: not pulled in part (is the image zstd:chunked?)", l.DiffID)
		}
	}
	full := fullPull(t, ref)
	if res.Image != full.Image || res.ManifestDigest != full.ManifestDigest {
		t.Errorf("partial pull: image %s manifest %s; full pull: %s %s", res.Image, res.ManifestDigest, full.Image, full.ManifestDigest)
	}
	fsckClean(t, r)
	// Each layer reproduces its archive (its diff ID).
	for _, l := range res.Layers {
		var buf bytes.Buffer
		if err := WriteLayer(r, l.DiffID, &buf); err != nil {
			t.Fatal(err)
		}
		if got := sha256Hash(buf.Bytes()).String(); got != l.DiffID {
			t.Errorf("layer %s written back as %s", l.DiffID, got)
		}
	}
}

// manyFiles is a layer of n files of size bytes of text (each its own,
// so that none is deduplicated), under dir.
func manyFiles(dir string, seed uint64, n, size int) []member {
	ms := []member{dirM(dir+"/", 0o755)}
	for i := range n {
		ms = append(ms, fileM(fmt.Sprintf("%s/f%04d", dir, i), 0o644, textBytes(seed+uint64(i), size)))
	}
	return ms
}

func TestPullChunkedFetchesOnlyWhatIsMissing(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	a := [][]member{manyFiles("usr/a", 1000, 200, 40000), manyFiles("usr/b", 5000, 100, 60000)}
	b := [][]member{append([]member(nil), a[0]...), append([]member(nil), a[1]...)}
	// 1% of the files change: 2 of the first layer, 1 of the second.
	b[0][10] = fileM(b[0][10].name, 0o644, textBytes(90001, 40000))
	b[0][150] = fileM(b[0][150].name, 0o644, textBytes(90002, 40000))
	b[1][50] = fileM(b[1][50].name, 0o644, textBytes(90003, 60000))
	refA := pushChunked(t, reg, a, "gocfs/a:v1")
	refB := pushChunked(t, reg, b, "gocfs/b:v1")
	r := newTestRepo(t)
	if _, err := Pull(context.Background(), r, refA, PullOptions{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(context.Background(), r, refB, PullOptions{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	m := must(must(remote.Image(must(name.ParseReference(refB)))).Manifest())
	var size, read int64
	for i, l := range res.Layers {
		size += m.Layers[i].Size
		read += l.Read
		if !l.Partial {
			t.Errorf("layer %d pulled whole", i)
		}
	}
	t.Logf("B: %d bytes compressed, %d fetched (%.2f%%)", size, read, 100*float64(read)/float64(size))
	if read > size/20 {
		t.Errorf("pulling B after A fetched %d bytes of %d (more than 5%%)", read, size)
	}
	if full := fullPull(t, refB); full.Image != res.Image {
		t.Errorf("partial pull of B: image %s, full pull %s", res.Image, full.Image)
	}
	fsckClean(t, r)
}

// chunkedBlob is a zstd:chunked layer blob taken apart: the frames
// before the TOC, and the TOC.
type chunkedBlob struct {
	head []byte
	toc  map[string]any
}

// splitChunked takes apart the blob of a zstd:chunked layer.
func splitChunked(t testing.TB, blob []byte, d v1.Descriptor) *chunkedBlob {
	t.Helper()
	ref, ok, err := chunkedRef(d)
	if err != nil || !ok {
		t.Fatalf("not a zstd:chunked layer: %v", err)
	}
	zd := must(zstd.NewReader(bytes.NewReader(blob[ref.offset : ref.offset+ref.length])))
	defer zd.Close()
	cb := &chunkedBlob{head: blob[:ref.offset-skippableHeader]}
	if err := json.Unmarshal(must(io.ReadAll(zd)), &cb.toc); err != nil {
		t.Fatal(err)
	}
	return cb
}

// join puts the blob together again (the TOC in its skippable frame, the
// footer containers/storage writes) and returns it and the annotations
// that name its TOC.
func (cb *chunkedBlob) join(t testing.TB) ([]byte, map[string]string) {
	t.Helper()
	js := must(json.Marshal(cb.toc))
	ze := must(zstd.NewWriter(nil))
	toc := ze.EncodeAll(js, nil)
	skippable := func(b []byte) []byte {
		h := binary.LittleEndian.AppendUint32(nil, 0x184d2a50)
		return append(binary.LittleEndian.AppendUint32(h, uint32(len(b))), b...)
	}
	off := int64(len(cb.head)) + skippableHeader
	var footer []byte
	for _, v := range []uint64{uint64(off), uint64(len(toc)), uint64(len(js)), 1} {
		footer = binary.LittleEndian.AppendUint64(footer, v)
	}
	footer = append(footer, "GnUlInUx"...)
	blob := append(append(append([]byte(nil), cb.head...), skippable(toc)...), skippable(footer)...)
	return blob, map[string]string{
		"io.containers.zstd-chunked.manifest-checksum": sha256Hash(toc).String(),
		"io.containers.zstd-chunked.manifest-position": fmt.Sprintf("%d:%d:%d:1", off, len(toc), len(js)),
	}
}

// tocFile returns the TOC entry of the regular file name.
func (cb *chunkedBlob) tocFile(t testing.TB, name string) map[string]any {
	t.Helper()
	for _, e := range cb.toc["entries"].([]any) {
		e := e.(map[string]any)
		if e["type"] == "reg" && e["name"] == name {
			return e
		}
	}
	t.Fatalf("no %s in the TOC", name)
	return nil
}

// serveLying serves the image at ref from a fake registry, its first
// layer's TOC changed by lie (the manifest names the new TOC: only the
// configuration's diff IDs tell the truth), and returns the reference.
func serveLying(t testing.TB, ref string, lie func(cb *chunkedBlob)) string {
	t.Helper()
	img := must(remote.Image(must(name.ParseReference(ref))))
	m := must(img.Manifest())
	layer := must(img.LayerByDigest(m.Layers[0].Digest))
	cb := splitChunked(t, must(io.ReadAll(must(layer.Compressed()))), m.Layers[0])
	lie(cb)
	blob, ann := cb.join(t)
	f := newFakeRegistry(t)
	f.putBlob(must(img.RawConfigFile()))
	for _, l := range m.Layers[1:] {
		f.putBlob(must(io.ReadAll(must(must(img.LayerByDigest(l.Digest)).Compressed()))))
	}
	m.Layers[0].Digest, m.Layers[0].Size, m.Layers[0].Annotations = f.putBlob(blob), int64(len(blob)), ann
	f.putManifest(must(json.Marshal(m)), types.OCIManifestSchema1, "v1")
	return f.ref("gocfs/lying:v1")
}

// noLayerNamed fails the test if the repository names an image or a
// layer.
func noLayerNamed(t testing.TB, r *repo.Repo) {
	t.Helper()
	for _, n := range must(r.Streams()) {
		if strings.HasPrefix(n, layerStreamPrefix) || strings.HasPrefix(n, "refs/") {
			t.Errorf("left named: streams/%s", n)
		}
	}
	if imgs := must(Images(r)); len(imgs) > 0 {
		t.Errorf("left named: images %v", imgs)
	}
}

func TestPullChunkedLyingTOC(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	layers := [][]member{{
		dirM("d/", 0o755),
		fileM("d/one", 0o644, textBytes(1, 40000)),
		fileM("d/two", 0o644, textBytes(2, 40000)),
		fileM("d/three", 0o644, randBytes(3, 3000)),
	}}
	ref := pushChunked(t, reg, layers, "gocfs/honest:v1")
	// Another image, whose d/one has other content of the same size.
	other := [][]member{append([]member(nil), layers[0]...)}
	other[0][1] = fileM("d/one", 0o644, textBytes(11, 40000))
	otherRef := pushChunked(t, reg, other, "gocfs/other:v1")
	// A repository that has the honest image's files.
	pulled := newTestRepo(t)
	if _, err := Pull(context.Background(), pulled, ref, PullOptions{Name: "honest"}); err != nil {
		t.Fatal(err)
	}
	honestOne := sha256Hash(layers[0][1].content).String()
	cases := []struct {
		name string
		repo *repo.Repo
		ref  string
		lie  func(cb *chunkedBlob)
		want string
	}{
		{"digest of a fetched file", nil, ref, func(cb *chunkedBlob) {
			cb.tocFile(t, "d/two")["digest"] = sha256Hash([]byte("not this")).String()
		}, `member "d/two"`},
		{"offsets of a fetched file", nil, ref, func(cb *chunkedBlob) {
			one, two := cb.tocFile(t, "d/one"), cb.tocFile(t, "d/two")
			one["offset"], two["offset"] = two["offset"], one["offset"]
			one["endOffset"], two["endOffset"] = two["endOffset"], one["endOffset"]
		}, "does not describe its layer"},
		{"offset into a frame", nil, ref, func(cb *chunkedBlob) {
			e := cb.tocFile(t, "d/three")
			e["offset"] = e["offset"].(float64) + 7
		}, `"d/three"`},
		{"the digest of content the repository has", pulled, otherRef, func(cb *chunkedBlob) {
			// d/one claims the content the repository has for d/one,
			// its frames hold other content: the content is not
			// fetched, and the archive rebuilt is not the layer.
			cb.tocFile(t, "d/one")["digest"] = honestOne
		}, "diff ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.repo
			if r == nil {
				r = newTestRepo(t)
			}
			lying := serveLying(t, c.ref, c.lie)
			_, err := Pull(context.Background(), r, lying, PullOptions{Name: "lying"})
			if err == nil || !errors.Is(err, errTOC) && !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("pull of a lying TOC: %v; want an error saying %q", err, c.want)
			}
			t.Log(err)
			if c.repo == nil {
				noLayerNamed(t, r)
			} else if _, err := Inspect(r, "lying"); err == nil {
				t.Error("the lying image is named")
			}
		})
	}
}
