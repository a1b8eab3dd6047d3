package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
)

func openStore(t *testing.T, opts store.Options) *store.Store {
	t.Helper()
	opts.Create = true
	s, err := store.Open(filepath.Join(t.TempDir(), "objects"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func digestOf(t *testing.T, data []byte, alg fsverity.Algorithm) digest.Digest {
	t.Helper()
	return digest.MustNew(alg, fsverity.Sum(data, alg))
}

// A payload naming a path outside the store is refused before anything
// is read or written.
func TestImportTreeRefusesPathsOutside(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 100), 0o644)
	for _, payload := range []string{"../../x", "ab/../../../etc/passwd", "/etc/passwd", "ab/cd", "AB/" + strings.Repeat("c", 62)} {
		s := openStore(t, store.Options{})
		root := &tree.Node{Mode: 0o40755}
		if err := root.AddChild("f", &tree.Node{Mode: 0o100644, Size: 100, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		err := s.ImportTree(context.Background(), root, src, 1)
		if !errors.Is(err, digest.ErrInvalid) {
			t.Errorf("payload %q: %v, want an invalid object path", payload, err)
		}
		if n := checkStore(t, s.Dir()); n != 0 {
			t.Errorf("payload %q: %d objects stored", payload, n)
		}
	}
}

// A file whose content changed after the scan is not stored under the
// scan's digest: the import fails naming the file, and the store holds
// only objects whose content has their name.
func TestImportChangedFile(t *testing.T) {
	src := t.TempDir()
	for _, size := range []int{5000, 3 << 20} { // read copy, kernel copy
		name := filepath.Join(src, "f")
		os.WriteFile(name, bytes.Repeat([]byte("a"), size), 0o644)
		root, err := scan.Dir(src, scan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(name, bytes.Repeat([]byte("b"), size), 0o644) // same size
		s := openStore(t, store.Options{})
		err = s.ImportTree(context.Background(), root, src, 1)
		if !errors.Is(err, store.ErrChanged) || !strings.Contains(err.Error(), name) {
			t.Fatalf("size %d: import of a changed file: %v", size, err)
		}
		if n := checkStore(t, s.Dir()); n != 0 {
			t.Fatalf("size %d: %d objects stored", size, n)
		}
	}
}

func TestNamedTemporaryFiles(t *testing.T) {
	srcDir := makeSource(t)
	s := openStore(t, store.Options{})
	store.ForceNamedTmp(s)
	root, err := scan.Dir(srcDir, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ImportTree(context.Background(), root, srcDir, 2); err != nil {
		t.Fatal(err)
	}
	if n := checkStore(t, s.Dir()); n < 100 {
		t.Fatalf("only %d objects", n)
	}
	if ents, err := os.ReadDir(filepath.Join(s.Dir(), ".tmp")); err != nil || len(ents) != 0 {
		t.Fatalf("temporary directory: %v, %d entries left", err, len(ents))
	}
}

func TestSHA512(t *testing.T) {
	s := openStore(t, store.Options{Algorithm: fsverity.SHA512})
	data := bytes.Repeat([]byte("sha512 "), 3000)
	w := s.NewWriter(nil)
	d, err := w.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if d != digestOf(t, data, fsverity.SHA512) {
		t.Fatalf("digest %s", d)
	}
	if res := s.Check(d, make([]byte, 4096), nil); res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := checkStore(t, s.Dir()); n != 1 {
		t.Fatalf("%d objects", n)
	}
}

// sparseSize is the size of the sparse files of the tests.
const sparseSize = 1 << 30

// sparseData are the data blocks of the sparse files: offset -> content.
var sparseData = map[int64][]byte{
	0:                      []byte("head"),
	5 << 20:                bytes.Repeat([]byte{7}, 10000),
	sparseSize - 4096 + 17: []byte("tail"),
}

func makeSparse(t *testing.T) (string, digest.Digest) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(sparseSize); err != nil {
		t.Fatal(err)
	}
	for off, b := range sparseData {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := fsverity.DigestFile(path, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return path, digest.MustNew(fsverity.SHA256, sum)
}

func checkSparse(t *testing.T, s *store.Store, d, want digest.Digest) {
	t.Helper()
	if d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.Path(d), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != sparseSize || st.Blocks*512 > 1<<20 {
		t.Fatalf("object of %d bytes uses %d blocks of 512 bytes: not sparse", st.Size, st.Blocks)
	}
}

// A mostly-hole file stays sparse, whether it is copied by the kernel,
// by reading and writing, or written as a stream.
func TestSparse(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 1 GiB files")
	}
	path, want := makeSparse(t)
	for _, how := range []string{"kernel", "read", "stream"} {
		t.Run(how, func(t *testing.T) {
			s := openStore(t, store.Options{})
			w := s.NewWriter(nil)
			var d digest.Digest
			switch how {
			case "kernel", "read":
				if how == "read" {
					defer store.SetKernelCopyMin(1 << 62)()
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if d, _, err = w.PutFile(f, want, sparseSize); err != nil {
					t.Fatal(err)
				}
			case "stream":
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				o, err := w.Create()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.CopyBuffer(o, struct{ io.Reader }{f}, make([]byte, 100000)); err != nil {
					t.Fatal(err)
				}
				if d, err = o.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			checkSparse(t, s, d, want)
		})
	}
}

// A fan-out directory replaced by a symbolic link to elsewhere is never
// written through, listed through or removed through.
func TestSymlinkedFanout(t *testing.T) {
	s := openStore(t, store.Options{})
	data := bytes.Repeat([]byte("outside? "), 500)
	d := digestOf(t, data, fsverity.SHA256)
	rel := d.ObjectPath()
	outside := t.TempDir()
	victim := filepath.Join(outside, rel[3:])
	os.WriteFile(victim, data, 0o644)
	if err := os.Symlink(outside, filepath.Join(s.Dir(), rel[:2])); err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter(nil)
	if _, err := w.Put(data); !errors.Is(err, store.ErrUnexpected) || !errors.Is(err, beneath.ErrSymlink) {
		t.Fatalf("Put through a symlinked fan-out directory: %v", err)
	}
	if err := s.Remove(d); !errors.Is(err, store.ErrUnexpected) {
		t.Fatalf("Remove through a symlinked fan-out directory: %v", err)
	}
	var problems []string
	err := s.Walk(context.Background(), func(e store.Entry) error {
		problems = append(problems, e.Path+": "+e.Problem)
		return nil
	})
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "symbolic link") {
		t.Fatalf("Walk: %v, %q", err, problems)
	}
	if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file outside the store was touched: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("%d files outside the store", len(ents))
	}
}

// Check finds corrupt objects; Remove removes only regular files.
func TestCheckAndRemove(t *testing.T) {
	s := openStore(t, store.Options{})
	w := s.NewWriter(nil)
	data := bytes.Repeat([]byte("check "), 1000)
	d, err := w.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if res := s.Check(d, buf, nil); res.Err != nil || res.Read != int64(len(data)) {
		t.Fatalf("%+v", res)
	}
	os.Chmod(s.Path(d), 0o644)
	if err := os.WriteFile(s.Path(d), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := s.Check(d, buf, nil); !errors.Is(res.Err, store.ErrCorrupt) {
		t.Fatalf("a corrupt object checked: %+v", res)
	}
	if ok, err := s.Has(d); !ok || err != nil {
		t.Fatalf("Has: %v %v", ok, err)
	}
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(d); ok {
		t.Fatal("removed object still there")
	}
	os.Symlink("/etc/passwd", s.Path(d))
	if err := s.Remove(d); !errors.Is(err, store.ErrUnexpected) {
		t.Fatalf("Remove of a symlink: %v", err)
	}
	if _, err := s.OpenObject(d); !errors.Is(err, store.ErrUnexpected) {
		t.Fatalf("OpenObject of a symlink: %v", err)
	}
}
