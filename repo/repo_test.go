package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

var ctx = context.Background()

func algorithms() []fsverity.Algorithm { return []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} }

func TestInitLayout(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			b, err := os.ReadFile(filepath.Join(r.Dir(), MetaFile))
			if err != nil {
				t.Fatal(err)
			}
			want := `{
  "version": 1,
  "algorithm": "fsverity-` + alg.String() + `-12",
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
			// composefs-rs 0.9's meta.json of cfsctl init (default
			// --erofs-version 1), byte for byte
			// (RepoMetadata::new_with_formats + to_json, repository.rs).
			if string(b) != want {
				t.Errorf("meta.json:\n%s\nwant:\n%s", b, want)
			}
			// Init again: the same repository; another algorithm: refused.
			if _, err := Init(r.Dir(), InitOptions{Algorithm: alg}, Options{}); err != nil {
				t.Errorf("init again: %v", err)
			}
			other := fsverity.SHA512
			if alg == other {
				other = fsverity.SHA256
			}
			if _, err := Init(r.Dir(), InitOptions{Algorithm: other}, Options{}); !errors.Is(err, ErrExists) {
				t.Errorf("init with %s over %s: %v, want ErrExists", other, alg, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrNotRepository) {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope"), Options{}); !errors.Is(err, ErrNotRepository) {
		t.Errorf("missing directory: %v", err)
	}
	for _, tc := range []struct{ meta, want string }{
		{`{"version": 2, "algorithm": "fsverity-sha256-12"}`, "format version 2"},
		{`{"version": 1, "algorithm": "fsverity-sha256-16"}`, "4096-byte blocks"},
		{`{"version": 1, "algorithm": "fsverity-sha1-12"}`, "sha1"},
		{`{"version": 1, "algorithm": "fsverity-sha256-12", "features": {"incompatible": ["x"]}}`, "incompatible"},
		{`not json`, "meta.json"},
	} {
		os.WriteFile(filepath.Join(dir, MetaFile), []byte(tc.meta), 0o644)
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("meta.json %s: %v, want ErrUnsupported mentioning %q", tc.meta, err, tc.want)
		}
	}
	os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{"version": 1, "algorithm": "fsverity-sha512-12", "features": {"read-only-compatible": ["x"]}}`), 0o644)
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag("x", "y"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("tag in a read-only-compatible repository: %v", err)
	}
	r.Close()

	// composefs-rs 0.9's meta.json of a V1 repository: v1_erofs is known,
	// the repository writable, its EROFS version 1.
	os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {"compatible": [], "read-only-compatible": ["v1_erofs"], "incompatible": []},
  "erofs_formats": {"default": 1}
}`), 0o644)
	r, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.writable(); err != nil {
		t.Errorf("a v1_erofs repository is not writable: %v", err)
	}
	if v := r.Meta().ErofsVersion(); v != 1 {
		t.Errorf("ErofsVersion = %d, want 1", v)
	}
	for meta, want := range map[string]int{
		`{"features": {"read-only-compatible": ["v1_erofs"]}}`: 1,
		`{"features": {}}`: 2,
		`{"erofs_formats": {"default": 2, "extra": [1]}}`: 2,
	} {
		var m Meta
		if err := json.Unmarshal([]byte(meta), &m); err != nil || m.ErofsVersion() != want {
			t.Errorf("%s: ErofsVersion %d (%v), want %d", meta, m.ErofsVersion(), err, want)
		}
	}
}

// A repository without meta.json (composefs-rs before it had one) is
// opened with the algorithm its objects' names have.
func TestOpenOldFormat(t *testing.T) {
	for _, alg := range algorithms() {
		dir := t.TempDir()
		d := fsverity.Sum([]byte("x"), alg)
		p := filepath.Join(dir, "objects", digest.MustNew(alg, d).ObjectPath())
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
		r, err := Open(dir, Options{})
		if err != nil || r.Algorithm() != alg {
			t.Errorf("%s: Open = %v, %v", alg, r, err)
		}
	}
}

func TestCreateImage(t *testing.T) {
	src := sampleTree(t, 1)
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			res, err := r.CreateImage(ctx, src, "app/v1", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.NewObjects == 0 || res.NewObjects != res.Objects {
				t.Errorf("first import: %d new objects of %d", res.NewObjects, res.Objects)
			}
			checkImage(t, r, "app/v1", src)
			checkImage(t, r, "refs/app/v1", src)
			checkImage(t, r, res.Image, src)

			// The layout composefs-rs has.
			link, err := os.Readlink(filepath.Join(r.Dir(), "images", res.Image))
			if err != nil || link != "../objects/"+res.Image[:2]+"/"+res.Image[2:] {
				t.Errorf("images/%s -> %q, %v", res.Image, link, err)
			}
			link, err = os.Readlink(filepath.Join(r.Dir(), "images/refs/app/v1"))
			if err != nil || link != "../../"+res.Image {
				t.Errorf("images/refs/app/v1 -> %q, %v", link, err)
			}

			// Again, under another name: nothing new.
			res2, err := r.CreateImage(ctx, src, "v2", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res2.Image != res.Image || res2.NewObjects != 0 {
				t.Errorf("second import: %+v, first %+v", res2, res)
			}
			objs, err := r.ImageObjects("v2")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != res.Objects {
				t.Errorf("ImageObjects: %d, import said %d", len(objs), res.Objects)
			}
			for _, o := range objs {
				d, _ := r.ParseDigest(o)
				sum, err := fsverity.DigestFile(r.ObjectPath(d), alg)
				if err != nil || !d.Equal(alg, sum) {
					t.Errorf("object %s: digest %x, %v", o, sum, err)
				}
			}
			images, err := r.Images()
			if err != nil {
				t.Fatal(err)
			}
			if len(images) != 1 || images[0].Digest != res.Image || !slices.Equal(images[0].Refs, []string{"app/v1", "v2"}) || images[0].Size <= 0 {
				t.Errorf("Images() = %+v", images)
			}
			f := fsckClean(t, r)
			if f.Objects != res.Objects+1 || f.Images != 1 || f.Refs != 2 || len(f.Leftovers) != 0 {
				t.Errorf("fsck: %+v", f)
			}
		})
	}
}

func TestTagUntag(t *testing.T) {
	r := newRepo(t, fsverity.SHA256)
	src := sampleTree(t, 2)
	res, err := r.CreateImage(ctx, src, "", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", ".a", "a/..", "a/.tmp-x", strings.Repeat("x", 256)} {
		if err := r.Tag(bad, res.Image); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Tag(%q): %v, want ErrInvalidName", bad, err)
		}
	}
	if err := r.Tag("x/y/z", res.Image); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag("w", "refs/x/y/z"); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag("x/y/z", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag to a missing image: %v", err)
	}
	if err := r.Tag("x", res.Image); err == nil {
		t.Errorf("tag over a directory of references succeeded")
	}
	refs, err := r.Refs()
	if err != nil || len(refs) != 2 || refs[0] != (Ref{"w", res.Image}) || refs[1] != (Ref{"x/y/z", res.Image}) {
		t.Errorf("Refs() = %+v, %v", refs, err)
	}
	if err := r.Untag("x/y/z"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "images/refs/x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directories left after untag: %v", err)
	}
	if err := r.Untag("x/y/z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("untag twice: %v", err)
	}
	if _, err := r.Resolve("x/y/z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve removed ref: %v", err)
	}
	fsckClean(t, r)
}

// makeVariant copies src to a new tree with one file changed and one
// added, so that the two share most objects.
func makeVariant(t *testing.T, src, name string, salt string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if out, err := runCmd("cp", "-a", src, dst); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dst, "size-0065536"), bytes.Repeat([]byte(salt), 65536/len(salt)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "added-"+name), bytes.Repeat([]byte(name+salt), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestGC(t *testing.T) {
	r := newRepo(t, fsverity.SHA256)
	src1 := sampleTree(t, 3)
	src2 := makeVariant(t, src1, "two", "2")
	res1, err := r.CreateImage(ctx, src1, "one", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := r.CreateImage(ctx, src2, "two", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.NewObjects != 2 {
		t.Errorf("the variant added %d objects, want 2", res2.NewObjects)
	}
	// Nothing to collect.
	g, err := r.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.ObjectsRemoved != 0 || len(g.ImagesRemoved) != 0 || g.ImagesKept != 2 || g.ObjectsKept != res1.Objects+2+2 {
		t.Errorf("GC with everything referenced: %+v", g)
	}
	// Leftovers of interrupted operations.
	os.WriteFile(filepath.Join(r.Dir(), "tmp", "link-dead"), nil, 0o644)
	os.WriteFile(filepath.Join(r.Dir(), "tmp", "obj-0123"), nil, 0o644) // an object written without O_TMPFILE
	if f := fsckClean(t, r); len(f.Leftovers) != 2 {
		t.Errorf("fsck leftovers: %q", f.Leftovers)
	}

	if err := r.Untag("one"); err != nil {
		t.Fatal(err)
	}
	dry, err := r.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// Image one, its changed file's object, and the image object.
	if !slices.Equal(dry.ImagesRemoved, []string{res1.Image}) || dry.ObjectsRemoved != 2 || len(dry.Leftovers) != 2 {
		t.Errorf("dry run: %+v", dry)
	}
	if _, err := r.Resolve(res1.Image); err != nil {
		t.Errorf("dry run removed the image: %v", err)
	}
	// Kept as a root.
	g, err = r.GC(ctx, GCOptions{Roots: []string{res1.Image}})
	if err != nil || g.ObjectsRemoved != 0 || len(g.Leftovers) != 2 {
		t.Errorf("GC with root: %+v, %v", g, err)
	}
	g, err = r.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.ImagesRemoved, dry.ImagesRemoved) || g.ObjectsRemoved != 2 || g.BytesRemoved != dry.BytesRemoved || len(g.Leftovers) != 0 {
		t.Errorf("GC: %+v; dry run said %+v", g, dry)
	}
	if _, err := r.Resolve(res1.Image); !errors.Is(err, ErrNotFound) {
		t.Errorf("collected image still resolves: %v", err)
	}
	checkImage(t, r, "two", src2)
	if f := fsckClean(t, r); f.Objects != res2.Objects+1 {
		t.Errorf("%d objects left, want %d", f.Objects, res2.Objects+1)
	}

	if err := r.Untag("two"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if f := fsckClean(t, r); f.Objects != 0 || f.Images != 0 {
		t.Errorf("after collecting everything: %+v", f)
	}
}

func TestImportImage(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			src := sampleTree(t, 4)
			r1 := newRepo(t, alg)
			res, err := r1.CreateImage(ctx, src, "a", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(r1.ObjectPath(res.Digest))
			if err != nil {
				t.Fatal(err)
			}
			r2 := newRepo(t, alg)
			_, err = r2.ImportImage(ctx, bytes.NewReader(img), "b")
			var me *MissingObjectsError
			if !errors.As(err, &me) || !errors.Is(err, ErrMissingObjects) || len(me.Missing) != res.Objects {
				t.Fatalf("import without the objects: %v", err)
			}
			if !strings.Contains(err.Error(), me.Missing[0].Object) || len(me.Missing[0].Files) == 0 {
				t.Errorf("error does not list the missing objects: %v", err)
			}
			if f := fsckClean(t, r2); f.Objects != 0 {
				t.Errorf("failed import left %d objects", f.Objects)
			}
			// With the objects (from a tree without a name), it goes in.
			if _, err := r2.CreateImage(ctx, src, "", CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			res2, err := r2.ImportImage(ctx, bytes.NewReader(img), "b")
			if err != nil {
				t.Fatal(err)
			}
			if res2.Image != res.Image || res2.Objects != res.Objects {
				t.Errorf("imported %+v, created %+v", res2, res)
			}
			checkImage(t, r2, "b", src)
			if _, err := r2.ImportImage(ctx, strings.NewReader(strings.Repeat("not an image", 1000)), "c"); err == nil {
				t.Errorf("imported garbage")
			}
			// An image of the other algorithm's repositories.
			other := newRepo(t, map[fsverity.Algorithm]fsverity.Algorithm{fsverity.SHA256: fsverity.SHA512, fsverity.SHA512: fsverity.SHA256}[alg])
			if _, err := other.ImportImage(ctx, bytes.NewReader(img), "x"); err == nil || !strings.Contains(err.Error(), "object path") {
				t.Errorf("import into a %s repository: %v", other.Algorithm(), err)
			}
			fsckClean(t, r2)
		})
	}
}

func TestCreateImageFromDump(t *testing.T) {
	src := sampleTree(t, 5)
	r := newRepo(t, fsverity.SHA256)
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dumpString(t, root)
	if _, err := r.CreateImageFromDump(ctx, strings.NewReader(d), "x", CreateOptions{}); !errors.Is(err, ErrMissingObjects) {
		t.Fatalf("dump without objects: %v", err)
	}
	res, err := r.CreateImage(ctx, src, "", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := r.CreateImageFromDump(ctx, strings.NewReader(d), "x", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Image != res.Image {
		t.Errorf("image from dump %s, from directory %s", res2.Image, res.Image)
	}
	sum, err := fsverity.DigestFile(filepath.Join(src, "size-0100000"), fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	rel := digest.MustNew(fsverity.SHA256, sum).ObjectPath()
	if !strings.Contains(d, rel) {
		t.Fatalf("dump has no payload %s", rel)
	}
	bad := strings.Replace(d, rel, "zz/"+rel[3:], 1)
	if _, err := r.CreateImageFromDump(ctx, strings.NewReader(bad), "y", CreateOptions{}); err == nil || !strings.Contains(err.Error(), "object path") {
		t.Errorf("dump with a bad payload: %v", err)
	}
	fsckClean(t, r)
}

// The acceptance test for corruption: a flipped byte in an object is found
// by fsck, which names the object and every image that uses it.
func TestFsckCorruption(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			src1 := sampleTree(t, 6)
			src2 := makeVariant(t, src1, "two", "x")
			src3 := sampleTree(t, 7)
			a, err := r.CreateImage(ctx, src1, "a", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.CreateImage(ctx, src2, "b", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Tag("b2", "b"); err != nil {
				t.Fatal(err)
			}
			c, err := r.CreateImage(ctx, src3, "c", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fsckClean(t, r)

			// The object of a file that a and b share and c has not.
			sum, err := fsverity.DigestFile(filepath.Join(src1, "size-0100000"), alg)
			if err != nil {
				t.Fatal(err)
			}
			obj := fsverity.Hex(sum)
			path := r.ObjectPath(digest.MustNew(alg, sum))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[12345] ^= 0x20
			os.Chmod(path, 0o644)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := r.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() {
				t.Fatal("fsck found nothing wrong")
			}
			var objProblem *Problem
			damaged := map[string][]string{}
			for i, p := range res.Problems {
				switch p.Kind {
				case KindObjectCorrupt:
					if objProblem != nil {
						t.Errorf("two corrupt objects: %+v", res.Problems)
					}
					objProblem = &res.Problems[i]
				case KindImageDamaged:
					damaged[p.Image] = p.Refs
					if !slices.Equal(p.Objects, []string{obj}) {
						t.Errorf("image %s: bad objects %q, want %s", p.Image, p.Objects, obj)
					}
				default:
					t.Errorf("unexpected problem %+v", p)
				}
			}
			if objProblem == nil || objProblem.Object != obj || objProblem.Path != "objects/"+digest.MustNew(alg, sum).ObjectPath() {
				t.Fatalf("corrupt object not named: %+v", res.Problems)
			}
			users := map[string][]string{}
			for _, u := range objProblem.UsedBy {
				users[u.Image] = u.Refs
				if !slices.Contains(u.Files, "/size-0100000") {
					t.Errorf("image %s: files %q, want /size-100000", u.Image, u.Files)
				}
			}
			want := map[string][]string{a.Image: {"a"}, b.Image: {"b", "b2"}}
			for _, got := range []map[string][]string{users, damaged} {
				if len(got) != 2 || !slices.Equal(got[a.Image], want[a.Image]) || !slices.Equal(got[b.Image], want[b.Image]) {
					t.Errorf("images named %v, want %v (and not %s)", got, want, c.Image)
				}
			}
		})
	}
}

func TestObjectWriterAndLockedCommit(t *testing.T) {
	r := newRepo(t, fsverity.SHA256)
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	w := r.NewObjectWriter()
	data := bytes.Repeat([]byte("object writer "), 100)
	d, err := w.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal(fsverity.SHA256, fsverity.Sum(data, fsverity.SHA256)) {
		t.Fatalf("Put gave digest %x", d)
	}
	if _, err := os.Stat(r.ObjectPath(d)); err == nil {
		t.Errorf("object named before Flush")
	}
	f, err := w.Create()
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	if d2, err := f.Commit(); err != nil || d2 != d {
		t.Fatalf("Commit of the same content: %x, %v", d2, err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if n, size := w.Stats(); n != 1 || size != int64(len(data)) {
		t.Errorf("Stats: %d objects, %d bytes", n, size)
	}
	if got, err := os.ReadFile(r.ObjectPath(d)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object: %v", err)
	}
	if _, err := w.Put(data); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Stats(); n != 1 {
		t.Errorf("an object present counted as new")
	}

	// CommitTree under the caller's lock.
	root := tree.New(tree.ModeDir | 0o755)
	file := tree.New(tree.ModeRegular | 0o644)
	file.Size, file.Payload = uint64(len(data)), d.ObjectPath()
	if err := root.AddChild("f", file); err != nil {
		t.Fatal(err)
	}
	res, err := r.CommitTree(context.Background(), root, "", "locked", CreateOptions{Locked: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.ResolveRef("locked"); err != nil || got != res.Digest {
		t.Errorf("reference: %x, %v", got, err)
	}
}

// A repository made with zero InitOptions (but Insecure) has cfsctl
// init --insecure's meta.json, byte for byte (fsverity-sha512-12, EROFS
// V1), and makes V1 images (composefs_version 1 even without whiteouts).
func TestInitErofsV1(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := Init(dir, InitOptions{Insecure: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := os.ReadFile(filepath.Join(dir, MetaFile))
	want := `{
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
	if string(b) != want {
		t.Errorf("meta.json:\n%s\nwant:\n%s", b, want)
	}
	res, err := r.CreateImage(ctx, sampleTree(t, 2), "a", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(r.ObjectPath(res.Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, err := image.ReadVersion(f); err != nil || v != 1 {
		t.Errorf("image version %d, %v; want 1", v, err)
	}
	if _, err := ParseErofsVersion("2"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ParseErofsVersion(2): %v", err)
	}
}

// ErofsV0 records erofs_formats default 0 (no v1_erofs) and makes
// mkcomposefs's default images.
func TestInitErofsV0(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := Init(dir, InitOptions{Algorithm: fsverity.SHA256, ErofsVersion: ErofsV0, Insecure: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, MetaFile)); !strings.Contains(string(b), `"default": 0`) || strings.Contains(string(b), "v1_erofs") {
		t.Errorf("meta.json:\n%s", b)
	}
	src := sampleTree(t, 3)
	res, err := r.CreateImage(ctx, src, "a", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v0, _ := image.Digest(root, image.DefaultOptions); res.Digest.Hex() != fsverity.Hex(v0) {
		t.Errorf("image %s; mkcomposefs's %x", res.Digest.Hex(), v0)
	}
}

// TestOpenHostileMeta: a FIFO or a directory in meta.json's place is
// refused at once (a FIFO used to hang every command), and a huge
// meta.json is not read whole.
func TestOpenHostileMeta(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(p string) error
		want string
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }, "not a regular file"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, "not a regular file"},
		{"huge", func(p string) error {
			return os.WriteFile(p, []byte(`{"version":1,"algorithm":"`+strings.Repeat("a", 3<<20)+`"}`), 0o644)
		}, "meta.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tc.make(filepath.Join(dir, MetaFile)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Open(dir, Options{}); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%v, want ErrUnsupported mentioning %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Open hangs")
			}
		})
	}
}

// TestFsckMetacopyDigest: fsck reports a file whose metacopy digest, of
// either algorithm, is not its object's name (overlayfs would refuse the
// object at open with verity on); an image planted by hand, as
// import-image refuses it.
func TestFsckMetacopyDigest(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			res, err := r.CreateImage(ctx, sampleTree(t, 5), "a", CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			root, _, err := r.ReadImage("a")
			if err != nil {
				t.Fatal(err)
			}
			var victim string
			root.Walk(func(p string, n *tree.Node) error {
				if victim == "" && n.LinkTo == nil && n.Payload != "" && n.Mode&tree.ModeType == tree.ModeRegular {
					if len(n.Digest) != alg.Size() {
						t.Errorf("%s: metacopy digest of %d bytes in a %s repository", p, len(n.Digest), alg)
					}
					victim = p
					n.Digest = bytes.Repeat([]byte{0xab}, alg.Size())
				}
				return nil
			})
			opts, err := r.ImageOptions()
			if err != nil {
				t.Fatal(err)
			}
			var img bytes.Buffer
			if err := image.Write(&img, root, opts); err != nil {
				t.Fatal(err)
			}
			raw, err := fsverity.Digest(bytes.NewReader(img.Bytes()), alg)
			if err != nil {
				t.Fatal(err)
			}
			d := digest.MustNew(alg, raw)
			p := r.ObjectPath(d)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, img.Bytes(), 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../objects/"+d.ObjectPath(), filepath.Join(r.Dir(), "images", d.Hex())); err != nil {
				t.Fatal(err)
			}
			f, err := r.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, pr := range f.Problems {
				if pr.Kind == KindImageInvalid && pr.Image == d.Hex() && strings.Contains(pr.Detail, victim+": its fs-verity digest abab") {
					found = true
				}
				if pr.Image == res.Image {
					t.Errorf("the good image reported: %+v", pr)
				}
			}
			if !found {
				t.Errorf("fsck of an image whose %s has a wrong metacopy digest: %+v", victim, f.Problems)
			}
		})
	}
}
