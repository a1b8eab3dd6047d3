package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
)

// "oci import-layer DIFFID NAME < tar" with the real binary stores the
// layer: "oci layer DIFFID" gives the same bytes back, and NAME is a
// stream reference (gc keeps the layer's objects); an archive whose
// SHA-256 is not DIFFID is refused and leaves no stream.
func TestOCIImportLayer(t *testing.T) {
	bin := testutil.GocfsBinary(t)
	l := ociTestLayer(t, map[string]string{"etc/big": strings.Repeat("x", 5000), "etc/s": "s"})
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tarball, _ := io.ReadAll(rc)
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(tarball))
	rdir := filepath.Join(t.TempDir(), "repo")
	run := func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--repo", rdir}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errOut.String())
		}
		return out.String(), err
	}
	if _, err := run(nil, "init", "--insecure"); err != nil {
		t.Fatal(err)
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := run(tarball, "oci", "import-layer", bad); err == nil || !strings.Contains(err.Error(), "not "+bad) {
		t.Errorf("import-layer with a wrong diff ID: %v", err)
	}
	if _, err := run(nil, "oci", "layer", bad); err == nil {
		t.Errorf("a layer imported with a wrong diff ID is there")
	}
	out, err := run(tarball, "oci", "import-layer", diffID, "mylayer")
	if err != nil || !strings.HasPrefix(out, "sha512:") {
		t.Fatalf("import-layer: %v %q", err, out)
	}
	if got, err := run(nil, "gc"); err != nil || !strings.Contains(got, "Objects: 0 removed") {
		t.Errorf("gc removed what the named layer holds: %v %s", err, got)
	}
	got, err := run(nil, "oci", "layer", diffID)
	if err != nil || !bytes.Equal([]byte(got), tarball) {
		t.Errorf("oci layer after import-layer: %v, %d bytes, want %d", err, len(got), len(tarball))
	}
}
