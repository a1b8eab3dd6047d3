// Package assets finds upstream composefs's reference test assets for the
// tests: the copy kept in this repository (testdata/composefs-assets, with
// its provenance), or the directory named by $GOCFS_ASSETS. The copy is
// checked against its SHA256SUMS before use, so a damaged or partial copy
// fails the test instead of silently testing less.
package assets

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Env names the variable that points the tests at another copy of the
// assets (for example a newer upstream checkout's tests/assets).
const Env = "GOCFS_ASSETS"

var (
	once     sync.Once
	checkErr error
)

// RepoDir returns the repository's own copy of the assets.
func RepoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "composefs-assets")
}

// Dir returns the assets directory the tests should use, failing tb when
// the repository's copy does not match its SHA256SUMS.
func Dir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv(Env); d != "" {
		return d
	}
	d := RepoDir()
	once.Do(func() { checkErr = Check(d) })
	if checkErr != nil {
		tb.Fatalf("reference assets: %v", checkErr)
	}
	return d
}

// Check verifies every file listed in dir/SHA256SUMS, and that the list
// names every asset file in dir.
func Check(dir string) error {
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return err
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			return fmt.Errorf("SHA256SUMS: malformed line %q", sc.Text())
		}
		want, name := fields[0], fields[1]
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, want)
		}
		listed[name] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if IsAsset(e.Name()) && !listed[e.Name()] {
			return fmt.Errorf("%s is not listed in SHA256SUMS", e.Name())
		}
	}
	return nil
}

// IsAsset reports whether name is one of upstream's asset files (a dump
// and the files that describe how to check it), not this copy's own notes.
func IsAsset(name string) bool {
	for _, suf := range []string{".dump", ".dump.gz", ".sha256", ".version"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}
