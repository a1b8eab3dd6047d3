package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/store"
)

// PutFile of content the store has already, digest not given, writes no
// temporary copy: small files are hashed before they are written, large
// ones once the writer has found that the store has most of what it puts.
func TestPutFileExistingNotCopied(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "objects"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files := map[string][]byte{
		"a-small": bytes.Repeat([]byte("small "), 1000),
		"b-small": bytes.Repeat([]byte("other "), 2000),
		"c-large": bytes.Repeat([]byte("large file "), 300_000), // beyond the kernel copy size
	}
	put := func(name string) (digest.Digest, bool) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := st.NewWriter(nil)
		d, isNew, err := w.PutFile(f, digest.Digest{}, int64(len(files[name])))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		if want := fsverity.Hex(fsverity.Sum(files[name], fsverity.SHA256)); d.Hex() != want {
			t.Fatalf("%s: digest %s, want %s", name, d, want)
		}
		return d, isNew
	}
	for _, name := range []string{"a-small", "b-small", "c-large"} {
		if _, isNew := put(name); !isNew {
			t.Fatalf("%s: not new in an empty store", name)
		}
	}
	before := store.TmpFiles(st)
	w := st.NewWriter(nil)
	for _, name := range []string{"a-small", "b-small", "c-large"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		_, isNew, err := w.PutFile(f, digest.Digest{}, -1)
		f.Close()
		if err != nil || isNew {
			t.Fatalf("%s again: new %v, %v", name, isNew, err)
		}
	}
	if n := store.TmpFiles(st) - before; n != 0 {
		t.Errorf("%d temporary copies written of content the store has", n)
	}
}
