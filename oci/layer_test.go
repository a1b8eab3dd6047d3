package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
)

// importBytes imports a tar archive into r as a layer, as Pull does, and
// returns its entries and split stream digest.
func importBytes(t *testing.T, r *repo.Repo, data []byte) ([]entry, []byte) {
	t.Helper()
	var entries []entry
	var d []byte
	err := r.Update(context.Background(), func(tx *repo.Tx) error {
		im := newImporter(r.Algorithm(), tx.Objects())
		var err error
		if entries, err = im.importTar(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		sum := sha256.Sum256(data)
		sd, err := tx.PutStream(LayerStreamName(fmt.Sprintf("sha256:%x", sum)), im.ss)
		d = sd.Bytes()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, d
}

// checkLayerRoundTrip checks that the layer comes back byte for byte and
// that replaying its split stream gives the entries the import gave.
func checkLayerRoundTrip(t *testing.T, r *repo.Repo, data []byte) []entry {
	t.Helper()
	entries, d := importBytes(t, r, data)
	var out bytes.Buffer
	sum := sha256.Sum256(data)
	if err := WriteLayer(r, fmt.Sprintf("%x", sum), &out); err != nil {
		t.Fatalf("WriteLayer: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("layer of %d bytes comes back as %d different bytes", len(data), out.Len())
	}
	replayed, err := storedLayer(r, d, sum[:])
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !reflect.DeepEqual(entries, replayed) {
		for i := range min(len(entries), len(replayed)) {
			if !reflect.DeepEqual(entries[i], replayed[i]) {
				t.Fatalf("replayed entry %d differs:\n%+v\n%+v", i, entries[i], replayed[i])
			}
		}
		t.Fatalf("replay gives %d entries, import %d", len(replayed), len(entries))
	}
	return entries
}

func TestLayerRoundTrip(t *testing.T) {
	r := newTestRepo(t)
	long := strings.Repeat("d", 150) + "/" + strings.Repeat("f", 255)
	members := []member{
		dirM("./", 0o755),
		dirM("etc/", 0o755).with(func(m *member) { m.xattrs = map[string]string{"user.dir": "x"} }),
		fileM("etc/empty", 0o644, nil),
		fileM("etc/small", 0o600, []byte("small\n")),
		fileM("etc/64", 0o644, randBytes(1, 64)),
		fileM("etc/65", 0o644, randBytes(2, 65)),
		fileM("etc/4097", 0o644, randBytes(3, 4097)),
		fileM("usr/lib/big", 0o644, randBytes(4, 3<<20+5)), // written as it is read
		fileM("usr/lib/big-copy", 0o644, randBytes(4, 3<<20+5)),
		fileM("etc/nanos", 0o644, []byte("x")).with(func(m *member) { m.mtime = time.Unix(1700000000, 123456789) }),
		fileM(long, 0o644, randBytes(5, 1000)).with(func(m *member) { m.xattrs = map[string]string{"user.a": "1", "user.b": "\x00\xff"} }),
		symlinkM("etc/link", strings.Repeat("../", 50)+"target"),
		linkM("etc/small-hl", "etc/small"),
		linkM("usr/lib/big-hl", "./usr/lib/big"),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3, mtime: t0},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8, minor: 0, mtime: t0},
		{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600, mtime: t0},
		whiteoutM("opt/.wh.gone"),
		whiteoutM("opt/.wh..wh..opq"),
		whiteoutM(".wh..wh.plnk"),
	}
	data := makeTar(t, members)
	// Tar writers pad archives to a record: bytes after the end marker
	// must come back too.
	data = append(data, make([]byte, 10240-len(data)%10240)...)
	entries := checkLayerRoundTrip(t, r, data)
	kinds := map[entryKind]int{}
	for _, e := range entries {
		kinds[e.kind]++
	}
	if len(entries) != len(members)-1 || kinds[entryWhiteout] != 1 || kinds[entryOpaque] != 1 {
		t.Errorf("%d entries (%v) for %d members", len(entries), kinds, len(members))
	}
	// The split stream holds the metadata, not the contents.
	d, err := LayerStream(r, fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(r.ObjectPath(objectDigest(r.Algorithm(), d)))
	if err != nil || fi.Size() > 20000 {
		t.Errorf("split stream: %v, %d bytes", err, fi.Size())
	}
	// Trailing garbage after the end marker is kept as well.
	checkLayerRoundTrip(t, r, append(makeTar(t, members[:3]), "trailing bytes"...))
}

// TestGNUTarRoundTrip imports an archive GNU tar made: GNU long names,
// a sparse file, xattrs, hard links, its own record padding.
func TestGNUTarRoundTrip(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar command")
	}
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a", strings.Repeat("x", 120)), 0o755))
	must(os.WriteFile(filepath.Join(src, "a", strings.Repeat("x", 120), strings.Repeat("y", 200)), randBytes(7, 777), 0o644))
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(err)
	f.WriteAt(randBytes(8, 5000), 1<<20)
	f.WriteAt([]byte("end"), 4<<20)
	f.Close()
	must(os.WriteFile(filepath.Join(src, "small-sparse-candidate"), []byte("tiny"), 0o644))
	must(os.Link(filepath.Join(src, "sparse"), filepath.Join(src, "sparse-hl")))
	must(os.Symlink("sparse", filepath.Join(src, "sym")))
	for _, format := range []string{"gnu", "posix"} {
		out := filepath.Join(t.TempDir(), "layer.tar")
		cmd := exec.Command(tarBin, "--sparse", "--format="+format, "-C", src, "-cf", out, ".")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, b)
		}
		data, err := os.ReadFile(out)
		must(err)
		r := newTestRepo(t)
		entries := checkLayerRoundTrip(t, r, data)
		var sparse *entry
		for i := range entries {
			if entries[i].path == "sparse" {
				sparse = &entries[i]
			}
		}
		if sparse == nil || sparse.size != 4<<20+3 {
			t.Fatalf("%s: sparse file: %+v", format, sparse)
		}
		// The sparse file's object has its full content.
		content, err := os.ReadFile(filepath.Join(src, "sparse"))
		must(err)
		got, err := os.ReadFile(r.ObjectPath(objectDigest(r.Algorithm(), sparse.digest)))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s: sparse file's object: %v, %d bytes", format, err, len(got))
		}
	}
}

func TestLayerErrors(t *testing.T) {
	r := newTestRepo(t)
	for name, members := range map[string][]member{
		"dotdot":        {fileM("a/../../etc/passwd", 0o644, nil)},
		"empty symlink": {symlinkM("a", "")},
	} {
		objs := r.NewObjectWriter()
		_, err := newImporter(r.Algorithm(), objs).importTar(bytes.NewReader(makeTar(t, members)))
		if err == nil {
			t.Errorf("%s: imported", name)
		}
		objs.Abort()
	}
	if _, err := newImporter(r.Algorithm(), r.NewObjectWriter()).importTar(strings.NewReader("not a tar archive at all, but long enough to fill a few blocks " + strings.Repeat("x", 1024))); err == nil {
		t.Errorf("garbage imported")
	}
	// A stream of another content type is refused.
	w := splitstream.NewWriter(r.Algorithm(), splitstream.OCIImage)
	var d []byte
	err := r.Update(context.Background(), func(tx *repo.Tx) error {
		var err error
		d, err = storeStream(tx, w, sha256.Sum256(nil), LayerStreamName("sha256:"+strings.Repeat("0", 64)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storedLayer(r, d, make([]byte, 32)); err == nil {
		t.Errorf("image record read as a layer")
	}
}

// failingObjects fails the n-th Put.
type failingObjects struct {
	objectStore
	n     atomic.Int32
	after int32
}

func (f *failingObjects) Put(data []byte) (digest.Digest, error) {
	if f.n.Add(1) == f.after {
		return digest.Digest{}, errors.New("disk on fire")
	}
	return f.objectStore.Put(data)
}

func TestImportObjectFailure(t *testing.T) {
	r := newTestRepo(t)
	var members []member
	for i := range 300 {
		members = append(members, fileM(fmt.Sprintf("f%03d", i), 0o644, randBytes(uint64(i), 5000)))
	}
	data := makeTar(t, members)
	for _, after := range []int32{1, 50, 300} {
		w := r.NewObjectWriter()
		objs := &failingObjects{objectStore: w, after: after}
		_, err := newImporter(r.Algorithm(), objs).importTar(bytes.NewReader(data))
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("failure at object %d: %v", after, err)
		}
		w.Abort()
	}
}

func TestFsckLayerStreamObjects(t *testing.T) {
	r := newTestRepo(t)
	only := randBytes(30, 5000)
	data := makeTar(t, []member{dirM("d", 0o755), fileM("d/only", 0o644, only), fileM("d/small", 0o644, []byte("inline"))})
	importBytes(t, r, data)
	checkFsck(t, r)

	obj := fsverity.Sum(only, r.Algorithm())
	if err := os.Remove(r.ObjectPath(objectDigest(r.Algorithm(), obj))); err != nil {
		t.Fatal(err)
	}
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream := "streams/" + LayerStreamName(fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
	var missing, damaged bool
	for _, p := range res.Problems {
		switch p.Kind {
		case repo.KindObjectMissing:
			missing = p.Object == fsverity.Hex(obj) && slices.Equal(p.Streams, []string{stream}) && len(p.UsedBy) == 0
		case repo.KindStreamDamaged:
			damaged = p.Path == stream && slices.Equal(p.Objects, []string{fsverity.Hex(obj)})
		}
	}
	if !missing || !damaged || len(res.Problems) != 2 {
		t.Errorf("fsck after removing an object only a layer stream refers to: %+v", res.Problems)
	}
}

// Layers stored by earlier gocfs, as gocfs-ss split streams named
// gocfs-oci-layer-DIFFID, are still found, written back byte for byte and
// replayed.
func TestLegacyLayerStream(t *testing.T) {
	r := newTestRepo(t)
	content := randBytes(7, 5000)
	data := makeTar(t, []member{fileM("f", 0o644, content)})
	if !bytes.Equal(data[512:5512], content) {
		t.Fatal("unexpected tar layout")
	}
	sum := sha256.Sum256(data)
	diffID := fmt.Sprintf("sha256:%x", sum)
	err := r.Update(context.Background(), func(tx *repo.Tx) error {
		obj, err := tx.Objects().Put(content)
		if err != nil {
			return err
		}
		w := splitstream.NewWriter(r.Algorithm(), splitstream.TarLayer)
		w.Write(data[:512])
		if err := w.WriteObject(obj.Bytes(), int64(len(content))); err != nil {
			return err
		}
		w.Write(data[5512:])
		_, err = storeStream(tx, w, sum, legacyLayerStreamPrefix+diffID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteLayer(r, diffID, &out); err != nil {
		t.Fatalf("WriteLayer: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Errorf("legacy layer not reproduced byte for byte")
	}
	d, err := LayerStream(r, diffID)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := storedLayer(r, d, sum[:])
	if err != nil || len(entries) != 1 || !bytes.Equal(entries[0].digest, fsverity.Sum(content, r.Algorithm())) {
		t.Errorf("replaying a legacy layer: %v, %+v", err, entries)
	}
	if _, err := storedLayer(r, d, make([]byte, 32)); err == nil {
		t.Errorf("legacy layer accepted for another diff ID")
	}
	checkFsck(t, r)
}

// A new layer's split stream is composefs-rs's: named oci-layer-DIFFID,
// content type "ocilayer", files of more than 64 bytes as objects.
func TestLayerStreamFormat(t *testing.T) {
	r := newTestRepo(t)
	big, small := randBytes(8, 65), randBytes(9, 64)
	data := makeTar(t, []member{fileM("big", 0o644, big), fileM("small", 0o644, small)})
	importBytes(t, r, data)
	name := fmt.Sprintf("oci-layer-sha256:%x", sha256.Sum256(data))
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
	ss, err := rsss.NewReader(f, st.Size(), rsss.WithContentType(rsss.ContentTypeOCILayer))
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if refs := ss.ObjectRefs(); len(refs) != 1 || refs[0].Hex() != fsverity.Hex(fsverity.Sum(big, r.Algorithm())) {
		t.Errorf("object refs: %v", refs)
	}
	if ss.StreamSize() != uint64(len(data)) {
		t.Errorf("stream_size %d, want %d", ss.StreamSize(), len(data))
	}
}
