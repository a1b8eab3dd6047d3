package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/gocfs/gocfs/repo"
)

// TestRegistryManifestDigest: a manifest fetched by tag must have the
// digest the registry's Docker-Content-Digest header gives (which
// go-containerregistry does not check), one fetched by digest that digest.
func TestRegistryManifestDigest(t *testing.T) {
	requireRoot(t)
	f := newFakeRegistry(t)
	a, b := testImage(t, smallLayers(1)), testImage(t, smallLayers(2))
	f.push(a, "a")
	db := f.push(b, "b")
	ma := must(a.RawManifest())

	// The manifest of a, served as b's.
	f.manifests["v1"] = fakeManifest{data: ma, mediaType: types.OCIManifestSchema1, digest: db.String()}
	r := newTestRepo(t)
	expectRefused(t, r, f.ref("test/img:v1"), PullOptions{}, ErrDigestMismatch, "manifest", db.String(), sha256Hash(ma).String())
	checkNothingNamed(t, r)

	// By digest.
	f.manifests[db.String()] = fakeManifest{data: ma, mediaType: types.OCIManifestSchema1}
	expectRefused(t, r, f.ref("test/img@"+db.String()), PullOptions{Name: "x"}, ErrDigestMismatch, "manifest", db.String(), sha256Hash(ma).String())
	checkNothingNamed(t, r)

	// No header: by tag, nothing to check the manifest against.
	f.manifests["v2"] = fakeManifest{data: ma, mediaType: types.OCIManifestSchema1, digest: "-"}
	res, err := Pull(context.Background(), r, f.ref("test/img:v2"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ManifestDigest != sha256Hash(ma).String() {
		t.Errorf("manifest digest %s, want %s", res.ManifestDigest, sha256Hash(ma))
	}
	checkFsck(t, r)
}

// TestRegistryIndexChild: the manifest an index names must have the
// index's digest for it.
func TestRegistryIndexChild(t *testing.T) {
	requireRoot(t)
	f := newFakeRegistry(t)
	a, b := testImage(t, smallLayers(1)), testImage(t, smallLayers(2))
	da := f.push(a, "a")
	f.push(b, "b")
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &plat}})
	f.putManifest(must(idx.RawManifest()), types.OCIImageIndex, "multi")
	mb := must(b.RawManifest())
	f.manifests[da.String()] = fakeManifest{data: mb, mediaType: types.OCIManifestSchema1}
	r := newTestRepo(t)
	expectRefused(t, r, f.ref("test/img:multi"), PullOptions{Platform: "linux/amd64"}, ErrDigestMismatch, "manifest", da.String(), sha256Hash(mb).String())
	checkNothingNamed(t, r)
}

// TestRegistryLayer: a layer blob must have its descriptor's digest and
// size; a longer one is refused as soon as it passes the size.
func TestRegistryLayer(t *testing.T) {
	requireRoot(t)
	img, other := testImage(t, smallLayers(1)), testImage(t, smallLayers(2))
	d0 := must(must(img.Layers())[0].Digest())
	orig := must(io.ReadAll(must(must(img.Layers())[0].Compressed())))
	sub := must(io.ReadAll(must(must(other.Layers())[0].Compressed())))

	f := newFakeRegistry(t)
	f.push(img, "v1")
	f.blobs[d0.String()] = fakeBlob{data: sub, size: int64(len(sub))}
	r := newTestRepo(t)
	expectRefused(t, r, f.ref("test/img:v1"), PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), sha256Hash(sub).String())
	checkNothingNamed(t, r)

	// The same size and the same archive, a byte of the gzip header (its
	// MTIME) changed: only the blob's digest tells them apart. The import
	// checks it (the download does not hash a blob it hands over through
	// memory).
	if orig[0] != 0x1f || orig[1] != 0x8b {
		t.Fatal("layer 0 is not gzip")
	}
	mod := bytes.Clone(orig)
	mod[4] ^= 1
	f.blobs[d0.String()] = fakeBlob{data: mod, size: int64(len(mod))}
	expectRefused(t, r, f.ref("test/img:v1"), PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), sha256Hash(mod).String())
	checkNothingNamed(t, r)

	// Longer, without a Content-Length: the blob goes on forever.
	f.blobs[d0.String()] = fakeBlob{size: -1, gen: func() io.Reader { return io.MultiReader(bytes.NewReader(orig), zeros{}) }}
	f.blobHook = func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool {
		if b.gen == nil {
			return false
		}
		io.Copy(w, b.gen()) // until the client goes
		return true
	}
	start := time.Now()
	expectRefused(t, r, f.ref("test/img:v1"), PullOptions{}, ErrDigestMismatch, "layer 0", d0.String(), "longer")
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("refusing took %s", el)
	}
	checkNothingNamed(t, r)
}

// zeros is an endless stream of zeros.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestPullStalled: a registry that sends a few bytes of a layer and then
// nothing fails the pull after the idle timeout, with an error naming the
// blob, and garbage collection runs meanwhile: the pull holds no lock
// while it waits for the network.
func TestPullStalled(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(1))
	d1 := must(must(img.Layers())[1].Digest())
	f := newFakeRegistry(t)
	f.push(img, "v1")
	stalled := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	f.blobHook = func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool {
		if digest != d1.String() {
			return false
		}
		w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
		w.Write(b.data[:100])
		w.(http.Flusher).Flush()
		select {
		case stalled <- struct{}{}:
		default:
		}
		select { // stall
		case <-r.Context().Done():
		case <-done:
		}
		return true
	}
	r := newTestRepo(t)
	const idle = 3 * time.Second
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := Pull(context.Background(), r, f.ref("test/img:v1"), PullOptions{IdleTimeout: idle, Retries: -1})
		errc <- err
	}()
	select {
	case <-stalled:
	case err := <-errc:
		t.Fatalf("pull ended before the stall: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the pull never reached the stalled layer")
	}
	gcDone := make(chan error, 1)
	go func() {
		_, err := r.GC(context.Background(), repo.GCOptions{})
		gcDone <- err
	}()
	gcWaits := false
	select {
	case err := <-gcDone:
		if err != nil {
			t.Errorf("gc: %v", err)
		}
	case <-time.After(idle * 2 / 3):
		t.Error("gc waits for the stalled pull")
		gcWaits = true
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled pull hangs")
	}
	el := time.Since(start)
	t.Logf("stalled pull failed after %s: %v", el, err)
	if err == nil || !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), d1.String()) {
		t.Errorf("error %v: want a stall naming %s", err, d1)
	}
	if el > idle+5*time.Second {
		t.Errorf("the stalled pull took %s (idle timeout %s)", el, idle)
	}
	if gcWaits {
		<-gcDone
	}
	checkNothingNamed(t, r, must(must(img.Layers())[0].DiffID()).String())
}

// TestPullRangeIgnored: a registry that answers the request resuming a
// cut blob with the whole blob from its start (ignoring the range): what
// the import read from memory is gone, so the layer is fetched again
// through a file, and the pull gives the right image.
func TestPullRangeIgnored(t *testing.T) {
	requireRoot(t)
	layers := smallLayers(1)
	img := testImage(t, layers)
	d0 := must(must(img.Layers())[0].Digest())
	f := newFakeRegistry(t)
	f.push(img, "v1")
	var blobTries atomic.Int32
	f.blobHook = func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool {
		if digest != d0.String() || blobTries.Add(1) > 2 {
			return false
		}
		// A third of the blob, from its start whatever the range, then
		// the connection is cut.
		w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
		w.Write(b.data[:len(b.data)/3])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, f.ref("test/img:v1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requestsFor("/blobs/" + d0.String())
	if len(reqs) != 3 || !strings.Contains(reqs[1], "bytes=") || strings.Contains(reqs[2], "bytes=") {
		t.Errorf("blob requests %q: want a resumed one, then the blob again from its start", reqs)
	}
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	checkPulled(t, r, res, want)
	checkFsck(t, r)
}

// TestPullRetries: failed requests are tried again, and a blob cut in the
// middle goes on from where it stopped, each time.
func TestPullRetries(t *testing.T) {
	requireRoot(t)
	layers := smallLayers(1)
	img := testImage(t, layers)
	d0 := must(must(img.Layers())[0].Digest())
	f := newFakeRegistry(t)
	f.push(img, "v1")
	var manifestTries, blobTries atomic.Int32
	f.manifestHook = func(w http.ResponseWriter, r *http.Request, ref string) bool {
		if ref == "v1" && manifestTries.Add(1) <= 2 {
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE"}]}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	f.blobHook = func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool {
		if digest != d0.String() || blobTries.Add(1) > 2 {
			return false
		}
		// Up to the next third of the blob, then the connection is cut.
		var from int
		if rg := r.Header.Get("Range"); rg != "" {
			if _, err := fmt.Sscanf(rg, "bytes=%d-", &from); err != nil {
				t.Errorf("range %q", rg)
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, b.size-1, b.size))
			w.Header().Set("Content-Length", strconv.FormatInt(b.size-int64(from), 10))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
		}
		w.Write(b.data[from:max(from, len(b.data)*int(blobTries.Load())/3)])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, f.ref("test/img:v1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requestsFor("/blobs/" + d0.String())
	if len(reqs) != 3 || !strings.Contains(reqs[2], "bytes=") {
		t.Errorf("blob requests %q: want three, the last from where the others stopped", reqs)
	}
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	checkPulled(t, r, res, want)
	checkFsck(t, r)

	// With no retries, the first failure is the pull's.
	manifestTries.Store(0)
	if _, err := Pull(context.Background(), newTestRepo(t), f.ref("test/img:v1"), PullOptions{Retries: -1}); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Errorf("pull without retries: %v, want the 503", err)
	}
}

// TestPullGCBetweenLayers: garbage collection that runs between two
// layers' imports removes the first (nothing names it yet); the pull
// finds it gone when it names the image, and fetches it again.
func TestPullGCBetweenLayers(t *testing.T) {
	requireRoot(t)
	layers := smallLayers(1)
	img := testImage(t, layers)
	ls := must(img.Layers())
	d0, d1 := must(ls[0].Digest()), must(ls[1].Digest())
	id0 := must(ls[0].DiffID())
	f := newFakeRegistry(t)
	f.push(img, "v1")
	r := newTestRepo(t)
	var once atomic.Bool
	f.blobHook = func(w http.ResponseWriter, req *http.Request, digest string, b fakeBlob) bool {
		if digest != d1.String() || once.Swap(true) {
			return false
		}
		// Wait for layer 0 to be stored, then collect it.
		for range 500 {
			if _, err := LayerStream(r, id0.String()); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		gc, err := r.GC(context.Background(), repo.GCOptions{})
		if err != nil || len(gc.StreamsPruned) != 1 {
			t.Errorf("gc between the layers: %v %+v", err, gc)
		}
		return false
	}
	res, err := Pull(context.Background(), r, f.ref("test/img:v1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.requestsFor("/blobs/" + d0.String())); n != 2 {
		t.Errorf("layer 0 fetched %d times, want 2", n)
	}
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	checkPulled(t, r, res, want)
	checkFsck(t, r)
}

// rawImage is an image made of given layer blobs and diff IDs, which need
// not match (for layers whose import must fail before its end).
func rawImage(t *testing.T, blobs [][]byte, diffIDs []v1.Hash) (config, manifest []byte) {
	t.Helper()
	cf := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
	config = must(json.Marshal(cf))
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: sha256Hash(config)},
	}
	for _, b := range blobs {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(b)), Digest: sha256Hash(b)})
	}
	return config, must(json.Marshal(m))
}

// writeRawLayout writes an OCI layout of a raw image tagged v1.
func writeRawLayout(t *testing.T, blobs [][]byte, diffIDs []v1.Hash) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	config, manifest := rawImage(t, blobs, diffIDs)
	for _, b := range append(blobs, config, manifest) {
		putBlob(t, dir, b)
	}
	writeLayoutIndex(t, dir, &v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{{
		MediaType: types.OCIManifestSchema1, Size: int64(len(manifest)), Digest: sha256Hash(manifest),
		Annotations: map[string]string{refNameAnnotation: "v1"},
	}}})
	return dir
}

// bigMemberTar returns the tar header of a member of size bytes (the
// content, zeros, and the end of the archive, also zeros, must follow).
func bigMemberHeader(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: t0}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdZeros returns a zstd frame of prefix followed by n zeros, built by
// hand from RLE blocks: 4 bytes per 128 KiB of zeros, so that 100 GB
// takes 3.2 MB and no time.
func zstdZeros(prefix []byte, n int64) []byte {
	var b bytes.Buffer
	// Magic; frame header: no content size, no checksum, a 128 KiB window.
	b.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38})
	block := func(typ uint32, size int64, last bool) {
		h := uint32(size)<<3 | typ<<1
		if last {
			h |= 1
		}
		b.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)})
	}
	block(0, int64(len(prefix)), false) // raw
	b.Write(prefix)
	for n > 0 {
		k := min(n, 128<<10)
		n -= k
		block(1, k, n == 0) // RLE: k times the next byte
		b.WriteByte(0)
	}
	return b.Bytes()
}

// diskUsage returns the blocks the files under dir take.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil {
				n += fi.Sys().(*syscall.Stat_t).Blocks
			}
		}
		return nil
	})
	return n * 512
}

// TestPullSizeLimit: a pull refuses to write more than MaxBytes: a layer
// that unpacks to a 100 GB file (3.2 MB of zstd, made by hand, never
// materialized), a 10 KB gzip bomb, a blob announced too big to download.
func TestPullSizeLimit(t *testing.T) {
	requireRoot(t)
	bogus := sha256Hash([]byte("never reached"))
	const limit = 64 << 20

	t.Run("zstd 100 GB from a registry", func(t *testing.T) {
		blob := zstdZeros(bigMemberHeader(t, 100<<30), 100<<30+1024)
		f := newFakeRegistry(t)
		config, manifest := rawImage(t, [][]byte{blob}, []v1.Hash{bogus})
		f.putBlob(blob)
		f.putBlob(config)
		f.putManifest(manifest, types.OCIManifestSchema1, "bomb")
		r := newTestRepo(t)
		before := diskUsage(t, r.Dir())
		start := time.Now()
		expectRefused(t, r, f.ref("test/img:bomb"), PullOptions{MaxBytes: limit}, ErrTooLarge, "layer 0", sha256Hash(blob).String())
		if el := time.Since(start); el > 30*time.Second {
			t.Errorf("refusing took %s", el)
		}
		if after := diskUsage(t, r.Dir()); after != before {
			t.Errorf("the repository takes %d bytes after the refused pull, %d before", after, before)
		}
		checkNothingNamed(t, r)
	})
	t.Run("gzip bomb in a layout", func(t *testing.T) {
		var buf bytes.Buffer
		zw := must(gzip.NewWriterLevel(&buf, gzip.BestCompression))
		zw.Write(makeTar(t, []member{fileM("bomb", 0o644, make([]byte, 10<<20))}))
		zw.Close()
		if buf.Len() > 12<<10 {
			t.Fatalf("the bomb is %d bytes", buf.Len())
		}
		dir := writeRawLayout(t, [][]byte{buf.Bytes()}, []v1.Hash{bogus})
		r := newTestRepo(t)
		before := diskUsage(t, r.Dir())
		expectRefused(t, r, "oci:"+dir+":v1", PullOptions{MaxBytes: 4 << 20}, ErrTooLarge, "layer 0", sha256Hash(buf.Bytes()).String())
		if after := diskUsage(t, r.Dir()); after != before {
			t.Errorf("the repository takes %d bytes after the refused pull, %d before", after, before)
		}
		checkNothingNamed(t, r)
	})
	t.Run("blob too big to download", func(t *testing.T) {
		f := newFakeRegistry(t)
		hdr := bigMemberHeader(t, 100<<30)
		size := int64(len(hdr)) + 100<<30 + 1024
		d := sha256Hash([]byte("not computed")) // 100 GB is not hashed for a test
		f.blobs[d.String()] = fakeBlob{size: size, gen: func() io.Reader {
			return io.MultiReader(bytes.NewReader(hdr), io.LimitReader(zeros{}, size-int64(len(hdr))))
		}}
		cf := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{bogus}}}
		config := must(json.Marshal(cf))
		f.putBlob(config)
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: sha256Hash(config)},
			Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Size: size, Digest: d}}}
		f.putManifest(must(json.Marshal(m)), types.OCIManifestSchema1, "big")
		r := newTestRepo(t)
		expectRefused(t, r, f.ref("test/img:big"), PullOptions{MaxBytes: limit}, ErrTooLarge, "layer 0", d.String())
		if reqs := f.requestsFor(d.String()); len(reqs) != 0 {
			t.Errorf("the blob was requested: %q", reqs)
		}
		checkNothingNamed(t, r)
	})
}
