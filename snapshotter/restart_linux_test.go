package snapshotter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/gocfs/gocfs/fsverity"
	cfsmount "github.com/gocfs/gocfs/mount"
)

// commitFile commits a snapshot name on parent holding the file rel.
func commitFile(t *testing.T, sn *Snapshotter, name, parent, rel, body string) {
	t.Helper()
	ctx := context.Background()
	ms, err := sn.Prepare(ctx, "prep-"+name, parent)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(dir, rel), []byte(body), 0o644)
	if uerr := mount.UnmountAll(dir, 0); err == nil {
		err = uerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, name, "prep-"+name); err != nil {
		t.Fatal(err)
	}
}

// TestRestart: a snapshotter started again after its chain mount went
// away (a reboot) and leftovers appeared (a killed Prepare's temporary
// directory, a committed snapshot's upper directory) mounts the chain its
// active snapshot stands on again and removes the leftovers; the active
// snapshot's mounts show both layers.
func TestRestart(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	t.Cleanup(func() { unmountAll(t, root) })
	sn, err := New(ctx, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	commitFile(t, sn, "one", "", "a", "layer one")
	commitFile(t, sn, "two", "one", "b", "layer two")
	if _, err := sn.Prepare(ctx, "active", "two"); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	unmountAll(t, root)
	for _, d := range []string{"new-123", "1"} { // 1 is committed "one"
		if err := os.MkdirAll(filepath.Join(root, snapshotsDir, d, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if sn, err = New(ctx, root, Options{}); err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	for _, d := range []string{"new-123", "1"} {
		if _, err := os.Stat(filepath.Join(root, snapshotsDir, d)); !os.IsNotExist(err) {
			t.Errorf("the leftover snapshots/%s is still there (%v)", d, err)
		}
	}
	ms, err := sn.Mounts(ctx, "active")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(dir, 0)
	for rel, want := range map[string]string{"a": "layer one", "b": "layer two"} {
		if got, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", rel, got, err, want)
		}
	}
}

// TestVerityRequire: with Options.Verity VerityRequire, where the root's
// file system has no fs-verity, a file whose content is an object is
// never served unchecked: the snapshot on its chain is refused (and
// nothing recorded), or reading the file fails.
func TestVerityRequire(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	t.Cleanup(func() { unmountAll(t, root) })
	sn, err := New(ctx, root, Options{Verity: cfsmount.VerityRequire})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if err := probeVerity(filepath.Join(root, repoDir)); err == nil {
		t.Skip("the file system of the test's root has fs-verity: nothing to refuse")
	}
	body := strings.Repeat("an object, not inline ", 10)
	commitFile(t, sn, "one", "", "a", body)
	ms, err := sn.Prepare(ctx, "child", "one")
	if err != nil {
		t.Logf("refused: %v", err)
		if _, serr := sn.Stat(ctx, "child"); !errdefs.IsNotFound(serr) {
			t.Errorf("after the refused Prepare, Stat: %v, want not found", serr)
		}
		return
	}
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(dir, 0)
	if got, err := os.ReadFile(filepath.Join(dir, "a")); err == nil {
		t.Errorf("read %d bytes of an object without fs-verity under verity=require", len(got))
	} else {
		t.Logf("reading refused: %v", err)
	}
}

// probeVerity reports whether fs-verity can be enabled on a file in dir.
func probeVerity(dir string) error {
	f, err := os.CreateTemp(dir, "verity-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.WriteString("probe"); err != nil {
		return err
	}
	f.Close()
	g, err := os.Open(f.Name())
	if err != nil {
		return err
	}
	defer g.Close()
	return fsverity.Enable(g, fsverity.SHA256)
}
