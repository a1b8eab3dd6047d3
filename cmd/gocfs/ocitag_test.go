package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/oci"
)

// "gocfs --repo R oci tag DIGEST NAME", with the real binary, names a
// pulled image (oci images lists it, under the global options too);
// "oci untag" of the only tag left lets gc remove the image's objects.
func TestOCITagUntag(t *testing.T) {
	bin := testutil.GocfsBinary(t)
	img, err := mutate.AppendLayers(empty.Image,
		ociTestLayer(t, map[string]string{"etc/a": strings.Repeat("a", 1000)}))
	if err != nil {
		t.Fatal(err)
	}
	dir := ociTestLayout(t, img, "v1")
	mdigest, _ := img.Digest()
	rdir := filepath.Join(t.TempDir(), "repo")
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--repo", rdir}, args...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("gocfs %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	run(true, "init", "--insecure")
	run(true, "oci", "pull", "oci:"+dir+":v1", "first")
	run(true, "oci", "tag", mdigest.String(), "second/name")
	out := run(true, "--hash", "sha512", "oci", "images")
	if !strings.Contains(out, "first") || !strings.Contains(out, "second/name") {
		t.Errorf("oci images after tag: %s", out)
	}
	if out := run(false, "--hash", "sha256", "oci", "images"); !strings.Contains(out, "but --hash sha256 was specified") {
		t.Errorf("oci with the wrong --hash: %s", out)
	}
	if out := run(false, "oci", "tag", "sha256:"+strings.Repeat("0", 64), "x"); !strings.Contains(out, "no OCI image with manifest") {
		t.Errorf("tag of an unknown manifest: %s", out)
	}
	if out := run(false, "oci", "tag", mdigest.String(), "a@b"); !strings.Contains(out, "'@'") {
		t.Errorf("tag with '@': %s", out)
	}
	if out := run(true, "oci", "fsck"); !strings.Contains(out, "oci image first: ok") || !strings.Contains(out, "oci image second/name: ok") {
		t.Errorf("oci fsck: %s", out)
	}
	// dump is composefs-info dump of the image.
	var in oci.Inspection
	if err := json.Unmarshal([]byte(run(true, "oci", "inspect", "second/name")), &in); err != nil || in.ManifestDigest != mdigest.String() {
		t.Fatalf("inspect second/name: %+v, %v", in, err)
	}
	cfsImage := in.Image
	if got := strings.TrimSpace(run(true, "oci", "compute-id", "second/name")); got != cfsImage || len(got) != 128 {
		t.Errorf("oci compute-id %q, the pulled image is %s", got, cfsImage)
	}
	dumped, err := exec.Command(bin, "--repo", rdir, "oci", "dump", "second/name").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command(bin, "composefs-info", "dump", filepath.Join(rdir, "images", cfsImage)).Output()
	if err != nil || len(want) == 0 || string(dumped) != string(want) {
		t.Errorf("oci dump:\n%s\ncomposefs-info dump (%v):\n%s", dumped, err, want)
	}
	// --xattrs, as cfsctl's: keep-user-xattrs keeps etc/'s user xattr.
	keep := strings.TrimSpace(run(true, "oci", "compute-id", "--xattrs", "keep-user-xattrs", "second/name"))
	if keep == cfsImage || len(keep) != 128 {
		t.Errorf("oci compute-id --xattrs keep-user-xattrs %q, the default %s", keep, cfsImage)
	}
	if d := run(true, "oci", "dump", "--xattrs", "keep-user-xattrs", "second/name"); !strings.Contains(d, "user.gocfs-test=1") || strings.Contains(string(dumped), "user.gocfs-test") {
		t.Errorf("oci dump --xattrs keep-user-xattrs:\n%s\ndefault:\n%s", d, dumped)
	}
	if out := run(false, "oci", "compute-id", "--xattrs", "all", "second/name"); !strings.Contains(out, "invalid xattr filtering mode") {
		t.Errorf("--xattrs all: %s", out)
	}
	run(true, "oci", "untag", "first")
	if out := run(true, "gc"); !strings.Contains(out, "Objects: 0 removed") {
		t.Errorf("gc while second/name holds the image: %s", out)
	}
	run(true, "oci", "untag", "second/name")
	if out := run(true, "gc"); strings.Contains(out, "Objects: 0 removed") {
		t.Errorf("gc after the last untag removed nothing: %s", out)
	}
	if out := run(true, "fsck"); !strings.Contains(out, "objects: 0/0 ok") {
		t.Errorf("fsck after gc: %s", out)
	}
}
