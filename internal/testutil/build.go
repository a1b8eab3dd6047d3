package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// defaultMkcomposefs is the image builder Mkcomposefs uses when
// GOCFS_TEST_MKCOMPOSEFS is not set: "gocfs" (this module's own
// "gocfs mkcomposefs") or "upstream" (UpstreamMkcomposefs).
const defaultMkcomposefs = "gocfs"

// UpstreamMkcomposefs is where the tests look for upstream's mkcomposefs
// when GOCFS_TEST_MKCOMPOSEFS=upstream.
const UpstreamMkcomposefs = "/opt/upstream-cfs/bin/mkcomposefs"

// MkcomposefsEnv names the environment variable that picks the image
// builder of Mkcomposefs: "gocfs" builds and runs ./cmd/gocfs, "upstream"
// runs UpstreamMkcomposefs, and anything else is the path of an
// mkcomposefs-compatible program.
const MkcomposefsEnv = "GOCFS_TEST_MKCOMPOSEFS"

// Mkcomposefs builds a composefs image of the directory src at img, with
// the objects in the directory store, by running an mkcomposefs
// ("mkcomposefs [extra...] --digest-store=STORE SRC IMG"; see
// MkcomposefsEnv for which one). It fails the test when the builder fails,
// and skips it when the chosen builder is not installed.
func Mkcomposefs(t testing.TB, src, img, store string, extra ...string) {
	t.Helper()
	argv := mkcomposefsCommand(t)
	args := append(append(append([]string{}, argv[1:]...), extra...), "--digest-store="+store, src, img)
	cmd := exec.Command(argv[0], args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("building image %s: %s %q: %v\n%s", img, argv[0], args, err, out.Bytes())
	}
}

// MkcomposefsName tells which image builder Mkcomposefs uses, for test
// logs.
func MkcomposefsName() string {
	if v := os.Getenv(MkcomposefsEnv); v != "" {
		return v
	}
	return defaultMkcomposefs
}

// mkcomposefsCommand returns the command line prefix that runs the chosen
// mkcomposefs.
func mkcomposefsCommand(t testing.TB) []string {
	t.Helper()
	switch which := MkcomposefsName(); which {
	case "gocfs":
		return []string{GocfsBinary(t), "mkcomposefs"}
	case "upstream":
		if _, err := os.Stat(UpstreamMkcomposefs); err != nil {
			t.Skipf("upstream mkcomposefs not installed (%v); set %s=gocfs to use ours", err, MkcomposefsEnv)
		}
		return []string{UpstreamMkcomposefs}
	default:
		if _, err := exec.LookPath(which); err != nil {
			t.Skipf("%s=%s: %v", MkcomposefsEnv, which, err)
		}
		return []string{which}
	}
}

var (
	buildOnce  sync.Once
	buildDir   string
	buildBin   string
	buildErr   error
	mainActive bool // Main runs the tests: it removes the cached build
)

// GocfsBinary builds this module's gocfs command and returns the path of
// the executable; it fails the test when the build fails. Under Main the
// build is made once per test process and removed at the end; otherwise it
// is made for the test into its temporary directory (the Go build cache
// makes the rebuilds cheap).
func GocfsBinary(t testing.TB) string {
	t.Helper()
	if !mainActive {
		bin, err := buildGocfs(t.TempDir())
		if err != nil {
			t.Fatalf("building gocfs: %v", err)
		}
		return bin
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gocfs-testbin-")
		if buildErr == nil {
			buildBin, buildErr = buildGocfs(buildDir)
		}
	})
	if buildErr != nil {
		t.Fatalf("building gocfs: %v", buildErr)
	}
	return buildBin
}

// buildGocfs builds ./cmd/gocfs into dir and returns the executable's path.
func buildGocfs(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gocfs")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/gocfs")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gocfs: %v\n%s", err, out)
	}
	return bin, nil
}

// Cleanup removes what GocfsBinary built for the whole process.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Main runs the tests of m and then Cleanup; use it as
//
//	func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
//
// to build gocfs once for all the tests of a package.
func Main(m *testing.M) int {
	mainActive = true
	code := m.Run()
	Cleanup()
	return code
}

// ModuleRoot returns the directory holding this module's go.mod, found
// upwards from the working directory (a package's directory under go test).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
