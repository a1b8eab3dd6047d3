package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gocfs repo init --erofs-version 1 writes cfsctl init's meta.json for a
// V1 repository; --ensure opens a repository already there as it is, where
// a plain init of another algorithm is refused.
func TestRepoInitFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if code, out := runRepo(t, dir, nil, "init", "--algorithm", "fsverity-sha512-12", "--erofs-version", "1", "--insecure"); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	meta, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil || !strings.Contains(string(meta), `"v1_erofs"`) || !strings.Contains(string(meta), `"default": 1`) {
		t.Errorf("meta.json: %s, %v", meta, err)
	}
	if code, _ := runRepo(t, dir, nil, "init", "--hash", "sha256", "--insecure"); code == 0 {
		t.Errorf("init of another algorithm over a repository succeeded")
	}
	if code, out := runRepo(t, dir, nil, "init", "--hash", "sha256", "--ensure"); code != 0 || !strings.Contains(out, "sha512") {
		t.Errorf("init --ensure: %d %s", code, out)
	}
	if code, _ := runRepo(t, dir, nil, "init", "--erofs-version", "2"); code == 0 {
		t.Errorf("init --erofs-version 2 succeeded")
	}
}
