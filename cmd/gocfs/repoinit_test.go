package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/scan"
)

// gocfs repo init, without options, writes cfsctl init's meta.json:
// fsverity-sha512-12 and a V1 repository; --ensure opens a repository already there as it is, where
// a plain init of another algorithm is refused.
func TestRepoInitFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if code, out := runRepo(t, dir, nil, "init", "--insecure"); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	meta, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil || !strings.Contains(string(meta), `"v1_erofs"`) || !strings.Contains(string(meta), `"default": 1`) || !strings.Contains(string(meta), `"fsverity-sha512-12"`) {
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

// create-image without --erofs-version makes the image in the format the
// repository's meta.json says: mkcomposefs's default for --erofs-version 0,
// mkcomposefs --min-version=1's for the default, V1.
func TestRepoCreateImageFormat(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{Seed: 5})
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for version, opts := range map[string]image.Options{"0": image.DefaultOptions, "1": {MinVersion: 1, MaxVersion: 1}} {
		d, err := image.Digest(root, opts)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "repo")
		if code, out := runRepo(t, dir, nil, "init", "--hash", "sha256", "--erofs-version", version, "--insecure"); code != 0 {
			t.Fatalf("init: %d %s", code, out)
		}
		code, out := runRepo(t, dir, nil, "create-image", "--no-propagate-usr-to-root", src)
		if want := "sha256:" + fsverity.Hex(d); code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("erofs version %s: create-image: exit %d: %q, want %s", version, code, out, want)
		}
	}
}
