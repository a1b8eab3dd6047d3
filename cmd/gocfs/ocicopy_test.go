package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/gocfs/gocfs/internal/testutil"
)

// "oci copy --from SRC IMAGE" with the real binary copies a pulled image
// into another repository, as cfsctl oci copy (crates/composefs-ctl/src/
// lib.rs OciCommand::Copy): same manifest, same layers byte for byte,
// even into a SHA-256 repository; --zerocopy across algorithms is refused.
func TestOCICopy(t *testing.T) {
	bin := testutil.GocfsBinary(t)
	img, err := mutate.AppendLayers(empty.Image,
		ociTestLayer(t, map[string]string{"etc/a": strings.Repeat("a", 1000)}),
		ociTestLayer(t, map[string]string{"etc/b": strings.Repeat("b", 3000), "etc/c": "c"}))
	if err != nil {
		t.Fatal(err)
	}
	layout := ociTestLayout(t, img, "v1")
	mdigest, _ := img.Digest()
	cfg, _ := img.ConfigFile()
	run := func(wantOK bool, rdir string, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--repo", rdir}, args...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("gocfs %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	src := filepath.Join(t.TempDir(), "src")
	run(true, src, "init", "--insecure")
	run(true, src, "oci", "pull", "oci:"+layout+":v1", "app")
	for _, alg := range []string{"sha512", "sha256"} {
		dst := filepath.Join(t.TempDir(), alg)
		run(true, dst, "init", "--insecure", "--hash", alg)
		if alg == "sha256" {
			if out := run(false, dst, "oci", "copy", "--zerocopy", "--from", src, "app"); !strings.Contains(out, "same hash algorithm") {
				t.Errorf("--zerocopy across algorithms: %s", out)
			}
		}
		out := run(true, dst, "oci", "copy", "--from", src, "--name", "copied", "app")
		if !strings.Contains(out, "Copied image app from "+src+" to destination repo, tagged as copied") ||
			!strings.Contains(out, "Manifest digest: "+mdigest.String()) || !strings.Contains(out, "Config verity:") {
			t.Errorf("%s: oci copy printed:\n%s", alg, out)
		}
		for _, l := range cfg.RootFS.DiffIDs {
			if a, b := run(true, src, "oci", "layer", l.String()), run(true, dst, "oci", "layer", l.String()); a != b || len(a) == 0 {
				t.Errorf("%s: layer %s differs after the copy", alg, l)
			}
		}
		pulled := filepath.Join(t.TempDir(), "pulled-"+alg)
		run(true, pulled, "init", "--insecure", "--hash", alg)
		want := strings.TrimSpace(run(true, pulled, "oci", "pull", "oci:"+layout+":v1", "x"))
		if got := strings.TrimSpace(run(true, dst, "oci", "compute-id", "copied")); got != want {
			t.Errorf("%s: the copy's image %s, a pull's %s", alg, got, want)
		}
		if out := run(true, dst, "oci", "fsck"); !strings.Contains(out, "oci image copied: ok") {
			t.Errorf("%s: oci fsck after copy: %s", alg, out)
		}
		// By digest, it needs a name.
		if out := run(false, dst, "oci", "copy", "--from", src, "@"+mdigest.String()); !strings.Contains(out, "give the copy a name") {
			t.Errorf("copy by digest without --name: %s", out)
		}
	}
	if out := run(false, src, "oci", "copy", "app"); !strings.Contains(out, "--from") {
		t.Errorf("copy without --from: %s", out)
	}
}
