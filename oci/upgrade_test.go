package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
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
	if len(notices) != 3 || !strings.Contains(notices[0], "erofs_formats") || !strings.Contains(notices[1], "1 OCI tag") ||
		!strings.Contains(notices[2], "1 OCI image(s)") {
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
	// The image's streams are composefs-rs's now: every stream the tag
	// reaches is a SplitStream, so composefs-rs's gc can walk them; gc
	// removes the old gocfs-ss streams, and the image still mounts.
	checkRSStreams(t, r, "oci/"+encodeTag(name))
	if _, err := os.Lstat(filepath.Join(dir, "streams", LayerStreamName(legacyDiffID(t, r, name)))); err != nil {
		t.Errorf("no composefs-rs layer stream after the upgrade: %v", err)
	}
	g, err := r.GC(context.Background(), repo.GCOptions{})
	if err != nil || len(g.StreamsPruned) == 0 {
		t.Errorf("gc after the upgrade: %+v, %v", g, err)
	}
	checkFsck(t, r)
	if res, err := Fsck(context.Background(), r, name); err != nil || !res.OK() {
		t.Errorf("oci fsck after the upgrade and gc: %+v, %v", res, err)
	}
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

// checkRSStreams checks that ref and every stream it reaches, through
// named refs, is a composefs-rs split stream (magic "SplitStream",
// splitstream_format.rs), read by repo/splitstream as composefs-rs's gc
// reads it.
func checkRSStreams(t *testing.T, r *repo.Repo, ref string) {
	t.Helper()
	_, d, err := r.ResolveStreamRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[digest.Digest]bool{}
	var walk func(d digest.Digest)
	walk = func(d digest.Digest) {
		if seen[d] {
			return
		}
		seen[d] = true
		f, err := r.OpenObject(d)
		if err != nil {
			t.Errorf("stream %s: %v", d.Hex(), err)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		rd, err := rsss.NewReader(f, fi.Size())
		if err != nil {
			t.Errorf("stream %s reached from %s is not composefs-rs's: %v", d.Hex(), ref, err)
			return
		}
		for _, s := range rd.StreamRefs() {
			if _, statErr := os.Stat(r.ObjectPath(s)); statErr == nil && !isImage(r, s) {
				walk(s)
			}
		}
	}
	walk(d)
	if len(seen) < 3 {
		t.Errorf("only %d streams reached from %s", len(seen), ref)
	}
}

// isImage reports whether d is linked under images/.
func isImage(r *repo.Repo, d digest.Digest) bool {
	_, err := os.Lstat(filepath.Join(r.Dir(), "images", d.Hex()))
	return err == nil
}

// legacyDiffID returns the diff ID of the first layer of the image name.
func legacyDiffID(t *testing.T, r *repo.Repo, name string) string {
	t.Helper()
	rec, err := lookupRecord(r, name)
	if err != nil || len(rec.Layers) == 0 {
		t.Fatalf("record of %s: %+v, %v", name, rec, err)
	}
	return rec.Layers[0].DiffID
}
