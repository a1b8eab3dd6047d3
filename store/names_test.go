package store_test

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/store"
)

// contentIn returns content (over 64 bytes, tagged tag) whose digest
// falls in the fanout directory of d.
func contentIn(t *testing.T, d digest.Digest, tag string) ([]byte, digest.Digest) {
	t.Helper()
	for i := 0; i < 1_000_000; i++ {
		data := []byte(fmt.Sprintf("%s %d: some content long enough to be an object of the store, not inline", tag, i))
		c := digestOf(t, data, d.Algorithm())
		if c.Hex()[:2] == d.Hex()[:2] {
			return data, c
		}
	}
	t.Fatal("no content found for the directory")
	return nil, digest.Digest{}
}

// A Writer tells from its index of names that the store lacks an object
// (no lookup), and never that it has one: objects stored before the
// writer listed their directory, objects it linked itself, objects
// another writer linked after the listing (written again, the link
// finding the name) and names that are not regular files are all
// answered by looking them up.
func TestWriterNameIndex(t *testing.T) {
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		t.Run(alg.String(), func(t *testing.T) { testWriterNameIndex(t, alg) })
	}
}

func testWriterNameIndex(t *testing.T, alg fsverity.Algorithm) {
	s := openStore(t, store.Options{Algorithm: alg})
	old := []byte("content stored before the writer came, long enough to be an object")
	putSync(t, s.NewWriter(nil), old)
	dOld := digestOf(t, old, alg)

	w := s.NewWriter(nil)
	defer w.Abort()
	// The writer lists dOld's directory: dOld is there, a neighbour is not.
	neighbour, dN := contentIn(t, dOld, "neighbour")
	if store.KnownAbsent(w, dOld) {
		t.Fatalf("an object stored before the listing is said to be missing")
	}
	if !store.KnownAbsent(w, dN) {
		t.Fatalf("a missing object in a listed directory is not known to be missing")
	}
	tmps := store.TmpFiles(s)
	if _, err := w.Put(old); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Stats(); n != 0 || store.TmpFiles(s) != tmps {
		t.Fatalf("content the store had was written again (%d new objects)", n)
	}

	// Linked by the writer: then found present.
	if _, err := w.Put(neighbour); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if store.KnownAbsent(w, dN) {
		t.Fatalf("an object the writer linked is said to be missing")
	}
	tmps = store.TmpFiles(s)
	if _, err := w.Put(neighbour); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Stats(); n != 1 || store.TmpFiles(s) != tmps {
		t.Fatalf("content the writer linked was written again (%d new objects)", n)
	}

	// Linked by another writer after the listing: written once more, and
	// published all the same, the object intact.
	late, dLate := contentIn(t, dOld, "late")
	putSync(t, s.NewWriter(nil), late)
	if _, err := w.Put(late); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("publishing an object another writer named meanwhile: %v", err)
	}
	if got, err := os.ReadFile(s.Path(dLate)); err != nil || string(got) != string(late) {
		t.Fatalf("the object named twice: %q, %v", got, err)
	}
	if r := s.Check(dLate, make([]byte, 4096), nil); r.Err != nil {
		t.Fatal(r.Err)
	}

	// Not a regular file under an object's name: looked up, refused.
	odd, dOdd := contentIn(t, dOld, "odd")
	if err := os.Mkdir(s.Path(dOdd), 0o755); err != nil {
		t.Fatal(err)
	}
	w2 := s.NewWriter(nil)
	defer w2.Abort()
	if _, err := w2.Put(odd); !errorsIs(err, store.ErrUnexpected) {
		t.Fatalf("a directory under the object's name: Put = %v, want ErrUnexpected", err)
	}
}

// A fanout directory larger than the index takes is not listed: every
// name is looked up.
func TestWriterNameIndexLargeDirectory(t *testing.T) {
	s := openStore(t, store.Options{})
	old := []byte("content stored before the writer came, long enough to be an object")
	putSync(t, s.NewWriter(nil), old)
	_, dN := contentIn(t, digestOf(t, old, fsverity.SHA256), "neighbour")
	defer store.SetMaxIndexedDir(0)()
	w := s.NewWriter(nil)
	defer w.Abort()
	if store.KnownAbsent(w, dN) {
		t.Fatalf("a directory too large to list was indexed")
	}
	if _, err := w.Put(old); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Stats(); n != 0 {
		t.Fatalf("content the store had was written again")
	}
}

// putSync stores data with w and makes it durable.
func putSync(t *testing.T, w *store.Writer, data []byte) {
	t.Helper()
	if _, err := w.Put(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Objects linked while their directory is being listed, from several
// goroutines with publications under way in the background, are all
// known afterwards: none is written twice.
func TestWriterNameIndexConcurrent(t *testing.T) {
	s := openStore(t, store.Options{})
	w := s.NewWriter(nil)
	defer w.Abort()
	w.FlushAhead(4096)
	const workers, each = 4, 300
	content := func(g, i int) []byte {
		return []byte(fmt.Sprintf("worker %d object %d, long enough to be an object of the store, not inline", g, i))
	}
	var eg errgroup.Group
	for g := range workers {
		eg.Go(func() error {
			for i := range each {
				if _, err := w.Put(content(g, i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	tmps := store.TmpFiles(s)
	for g := range workers {
		for i := range each {
			if _, err := w.Put(content(g, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := w.Stats(); n != workers*each || store.TmpFiles(s) != tmps {
		t.Fatalf("%d new objects, %d written again; want %d, 0", n, store.TmpFiles(s)-tmps, workers*each)
	}
}
