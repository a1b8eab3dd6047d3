package repo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenMeta opens a repository whose meta.json is arbitrary bytes:
// either it opens, with an algorithm it knows, or the error wraps
// ErrUnsupported (or ErrNotRepository); never a panic.
func FuzzOpenMeta(f *testing.F) {
	f.Add([]byte(`{"version": 1, "algorithm": "fsverity-sha512-12"}`))
	f.Add([]byte(`{"version": 1, "algorithm": "fsverity-sha256-12", "features": {"compatible": ["a"], "read-only-compatible": ["x"], "incompatible": []}}`))
	f.Add([]byte(`{"version": 2, "algorithm": "fsverity-sha256-12"}`))
	f.Add([]byte(`not json`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, meta []byte) {
		if err := os.WriteFile(filepath.Join(dir, MetaFile), meta, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(dir, Options{ReadOnly: true})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNotRepository) {
				t.Fatalf("meta.json %q: %v (neither ErrUnsupported nor ErrNotRepository)", meta, err)
			}
			return
		}
		defer r.Close()
		if !r.Algorithm().Valid() {
			t.Fatalf("meta.json %q: opened with algorithm %v", meta, r.Algorithm())
		}
	})
}
