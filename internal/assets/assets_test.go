package assets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRepoCopy checks the repository's copy against its checksums and
// counts what upstream's rules rely on, so a copy that lost files fails.
func TestRepoCopy(t *testing.T) {
	d := RepoDir()
	if err := Check(d); err != nil {
		t.Fatal(err)
	}
	shas, _ := filepath.Glob(filepath.Join(d, "*.sha256"))
	fails, _ := filepath.Glob(filepath.Join(d, "should-fail-*.dump"))
	if len(shas) != 12 || len(fails) != 14 {
		t.Errorf("found %d .sha256 files and %d should-fail dumps; want 12 and 14", len(shas), len(fails))
	}
}

// TestCheckCatchesDamage flips one byte in a copy and expects Check to
// name the file.
func TestCheckCatchesDamage(t *testing.T) {
	src := RepoDir()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "special.dump" {
			data[100] ^= 1
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Check(dst); err == nil || !bytes.Contains([]byte(err.Error()), []byte("special.dump")) {
		t.Fatalf("Check of a damaged copy: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dst, "extra.dump"), []byte("/ 0 40755 1 0 0 0 0.0 - - -\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "special.dump"), mustRead(t, filepath.Join(src, "special.dump")), 0o644)
	if err := Check(dst); err == nil {
		t.Fatal("Check accepted an unlisted asset")
	}
}

// TestSharedCopyMatches compares the team's shared copy, when it is beside
// the repository, with ours: a newer upstream drop there should be noticed.
func TestSharedCopyMatches(t *testing.T) {
	shared := filepath.Join(RepoDir(), "..", "..", "..", "shared", "composefs-assets")
	ents, err := os.ReadDir(shared)
	if err != nil {
		t.Skipf("no shared copy at %s (only an extra source): %v", shared, err)
	}
	for _, e := range ents {
		if !IsAsset(e.Name()) {
			continue
		}
		theirs := mustRead(t, filepath.Join(shared, e.Name()))
		ours, err := os.ReadFile(filepath.Join(RepoDir(), e.Name()))
		if err != nil || !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs between the shared copy and testdata/composefs-assets (update ours with its provenance)", e.Name())
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
