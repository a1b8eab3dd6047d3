package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
)

// upstreamTestsDir is where scripts/install-deps.sh puts upstream
// composefs's tests/ (test-random-fuse.sh, test-lib.sh, gendir, dumpdir)
// of a pinned release; GOCFS_COMPOSEFS_TESTS names another.
const upstreamTestsDir = "/usr/local/share/gocfs/composefs-tests"

// TestUpstreamRandomFuseScript runs upstream composefs's own
// tests/test-random-fuse.sh, unchanged, with BINDIR a directory holding
// only gocfs's links (mkcomposefs, composefs-info, composefs-dump,
// composefs-fuse) and that directory first on the PATH: random trees built
// into images, dumped, rebuilt byte for byte and mounted with
// composefs-fuse, the mounts compared with the trees.
func TestUpstreamRandomFuseScript(t *testing.T) {
	requireFUSE(t)
	testutil.RequireRoot(t)
	dir := os.Getenv("GOCFS_COMPOSEFS_TESTS")
	if dir == "" {
		dir = upstreamTestsDir
	}
	script := filepath.Join(dir, "test-random-fuse.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("upstream composefs's tests are not installed (%v): run scripts/install-deps.sh", err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("upstream's gendir needs python3: %v", err)
	}
	c := newCLI(t)
	links := filepath.Join(t.TempDir(), "bin")
	c.ok("install-links", "--mount-helper-dir=", links)
	path := strings.Join([]string{links, filepath.Dir(py), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")
	for _, tool := range []string{"mkcomposefs", "composefs-info", "composefs-dump", "composefs-fuse"} {
		target, err := os.Readlink(filepath.Join(links, tool))
		if err != nil || target != c.bin {
			t.Fatalf("%s in %s: %q, %v; want a link to %s", tool, links, target, err, c.bin)
		}
	}
	for _, seed := range []string{"1"} {
		cmd := exec.Command("bash", script, links)
		cmd.Env = append(os.Environ(), "PATH="+path, "seed="+seed, "TMPDIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("seed %s: test-random-fuse.sh: %v\n%s", seed, err, out)
		} else if !strings.Contains(string(out), "Mounting composefs image using fuse") {
			t.Errorf("seed %s: test-random-fuse.sh did not mount (no FUSE for it?):\n%s", seed, out)
		}
	}
}
