package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
)

// A repository as gocfs before composefs-rs 0.9's layout left it (meta.json
// without erofs_formats, a gocfs-ss image record under a nested tag) is
// upgraded in place the first time it is opened for writing, with a
// notice; fsck is clean after, and the image still mounts.
func TestUpgradeOldRepository(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := repo.Init(dir, repo.InitOptions{Algorithm: fsverity.SHA256, ErofsVersion: repo.ErofsV0, Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const name = "reg.io/old:1"
	content, _, _ := buildLegacyImage(t, r, name)
	r.Close()
	// meta.json as earlier gocfs wrote it.
	old := "{\n  \"version\": 1,\n  \"algorithm\": \"fsverity-sha256-12\",\n  \"features\": {\n    \"compatible\": [],\n    \"read-only-compatible\": [],\n    \"incompatible\": []\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	// Opened read-only: nothing changes.
	ro, err := repo.Open(dir, repo.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "meta.json")); string(b) != old {
		t.Fatalf("a read-only open changed meta.json:\n%s", b)
	}
	var notices []string
	r, err = repo.Open(dir, repo.Options{Notice: func(m string) { notices = append(notices, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(notices) != 2 || !strings.Contains(notices[0], "erofs_formats") || !strings.Contains(notices[1], "1 OCI tag") {
		t.Errorf("notices: %q", notices)
	}
	var meta repo.Meta
	b, _ := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err := json.Unmarshal(b, &meta); err != nil || meta.ErofsFormats == nil || meta.ErofsFormats.Default != 0 || r.Meta().ErofsVersion() != 0 {
		t.Errorf("meta.json after the upgrade: %s (%v)", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "streams/refs/oci/reg.io%2Fold:1")); err != nil {
		t.Errorf("encoded tag: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "streams/refs/oci/reg.io")); err == nil {
		t.Errorf("the nested tag's directory is still there")
	}
	if infos, err := Images(r); err != nil || len(infos) != 1 || infos[0].Name != name || infos[0].Error != "" {
		t.Errorf("Images after the upgrade: %+v, %v", infos, err)
	}
	checkFsck(t, r)
	mnt := t.TempDir()
	if _, err := Mount(context.Background(), r, name, mnt, mount.Options{Verity: mount.VerityOff}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	mount.Unmount(mnt)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("the upgraded image's file: %v", err)
	}
	// Opened again: nothing more to do, no notice.
	notices = nil
	r2, err := repo.Open(dir, repo.Options{Notice: func(m string) { notices = append(notices, m) }})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if len(notices) != 0 {
		t.Errorf("notices on a second open: %q", notices)
	}
}
