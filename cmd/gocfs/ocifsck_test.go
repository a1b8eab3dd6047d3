package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/gocfs/gocfs/internal/testutil"
)

// "oci fsck", with the real binary: a pulled image is ok; with its file
// objects damaged, the image is reported (the layer no longer reads back
// to its diff ID) and the exit status is 1.
func TestOCIFsck(t *testing.T) {
	bin := testutil.GocfsBinary(t)
	img, err := mutate.AppendLayers(empty.Image,
		ociTestLayer(t, map[string]string{"etc/a": strings.Repeat("a", 3000)}))
	if err != nil {
		t.Fatal(err)
	}
	dir := ociTestLayout(t, img, "v1")
	rdir := filepath.Join(t.TempDir(), "repo")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--repo", rdir}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"init", "--insecure"}, {"oci", "pull", "oci:" + dir + ":v1", "app"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("%q: %v: %s", args, err, out)
		}
	}
	if out, err := run("oci", "fsck", "app"); err != nil || !strings.Contains(out, "oci image app: ok") || !strings.Contains(out, "status: ok") {
		t.Fatalf("oci fsck of a sound image: %v: %s", err, out)
	}
	out, err := run("image-objects", "refs/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(out) {
		hex := id[strings.IndexByte(id, ':')+1:]
		obj := filepath.Join(rdir, "objects", hex[:2], hex[2:])
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		data[0] ^= 1
		if err := os.WriteFile(obj, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = run("oci", "fsck")
	if code := exitCodeOf(err); code != 1 || strings.Contains(out, "oci image app: ok") || !strings.Contains(out, "oci image app: ") {
		t.Errorf("oci fsck of a damaged image: exit %d: %s", code, out)
	}
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
