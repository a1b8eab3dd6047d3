package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runDump(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	var e bytes.Buffer
	err := runComposefsDump(&e, "composefs-dump", args)
	return e.String(), exitStatus(t, err)
}

// TestComposefsDumpRoundTrip rewrites every golden image: the output must
// be byte-identical.
func TestComposefsDumpRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, img := range goldenImages(t) {
		out := filepath.Join(dir, filepath.Base(img))
		if errOut, code := runDump(t, img, out); code != 0 {
			t.Fatalf("%s: exit %d: %s", img, code, errOut)
		}
		a, _ := os.ReadFile(img)
		b, _ := os.ReadFile(out)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: rewritten image differs", filepath.Base(img))
		}
	}
	// Nothing but the outputs is left in the directory.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestComposefsDumpErrors(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	os.WriteFile(dst, []byte("old"), 0o600)
	bad := filepath.Join(dir, "bad")
	b, _ := os.ReadFile(infoGoldenDir + "/special.img")
	b[1024] ^= 0xff // corrupt the EROFS superblock magic
	os.WriteFile(bad, b, 0o644)
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{nil, "No source path specified\nusage: composefs-dump SRC DEST\n"},
		{[]string{"x"}, "No destination path specified\nusage: composefs-dump SRC DEST\n"},
		{[]string{"/nonexistent", dst}, "composefs-dump: Failed to open '/nonexistent': No such file or directory\n"},
		{[]string{"dump_test.go", dst}, "composefs-dump: Failed to get image version 'dump_test.go': Invalid argument\n"},
		{[]string{infoGoldenDir + "/special.img", "/nonexistent/out"}, "composefs-dump: failed to open '/nonexistent/out': No such file or directory\n"},
	} {
		errOut, code := runDump(t, c.args...)
		if code != 1 || errOut != c.stderr {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, code, errOut, c.stderr)
		}
	}
	errOut, code := runDump(t, bad, dst)
	if code != 1 || !strings.HasPrefix(errOut, "composefs-dump: Failed to load '"+bad+"'") {
		t.Errorf("bad image: exit %d, %q", code, errOut)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Errorf("destination changed on failure (%d bytes)", len(got))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files left behind: %v", ents)
	}
	// A successful run replaces it, keeping its permissions.
	if errOut, code := runDump(t, infoGoldenDir+"/special.img", dst); code != 0 {
		t.Fatal(errOut)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 || fi.Size() != 28672 {
		t.Errorf("replaced output: %v %d", fi.Mode(), fi.Size())
	}
}
