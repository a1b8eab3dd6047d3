package store_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/sample"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
)

// In a child process (see TestConcurrentProcesses) import and exit.
func TestMain(m *testing.M) {
	if src := os.Getenv("GOCFS_STORE_CHILD_SRC"); src != "" {
		if err := importDir(src, os.Getenv("GOCFS_STORE_CHILD_DST")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func importDir(src, dst string) error {
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		return err
	}
	st, err := store.Open(dst, store.Options{Create: true})
	if err != nil {
		return err
	}
	return st.ImportTree(context.Background(), root, src, 4)
}

func makeSource(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := sample.Create(dir, sample.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkStore verifies every object is named by the fs-verity digest of its
// content and that no temporary file is left.
func checkStore(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.Contains(rel, ".tmp") {
			t.Errorf("temporary file left: %s", rel)
			return nil
		}
		want, err := digest.ParseObjectPath(rel)
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		d, err := fsverity.DigestFile(p, want.Algorithm())
		if err != nil {
			return err
		}
		if !want.Equal(want.Algorithm(), d) {
			t.Errorf("object %s has digest %x", rel, d)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("object %s has mode %v", rel, fi.Mode())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportTree(t *testing.T) {
	src := makeSource(t)
	dst := filepath.Join(t.TempDir(), "objects")
	if err := importDir(src, dst); err != nil {
		t.Fatal(err)
	}
	n := checkStore(t, dst)
	// Every file over 64 bytes is there, each once.
	root, _ := scan.Dir(src, scan.Options{})
	want := map[string]bool{}
	for _, p := range []string{"files/size-65", "files/size-1048576", "bigdir/entry-0128-xxxxxxxx"} {
		nd := root.LookupPath(p)
		if nd == nil || nd.Payload == "" {
			t.Fatalf("%s: no payload", p)
		}
		want[nd.Payload] = true
		data, err := os.ReadFile(filepath.Join(dst, nd.Payload))
		if err != nil {
			t.Fatal(err)
		}
		orig, _ := os.ReadFile(filepath.Join(src, p))
		if !bytes.Equal(data, orig) {
			t.Fatalf("%s: stored content differs", p)
		}
	}
	if n < 100 {
		t.Fatalf("only %d objects", n)
	}
	// A second import adds nothing and changes nothing.
	before := listObjects(t, dst)
	if err := importDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if after := listObjects(t, dst); after != before {
		t.Fatal("re-import changed the store")
	}
}

func listObjects(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			fmt.Fprintf(&b, "%s %d %v\n", p, fi.Size(), fi.ModTime())
		}
		return nil
	})
	return b.String()
}

func TestConcurrentProcesses(t *testing.T) {
	src := makeSource(t)
	dst := filepath.Join(t.TempDir(), "objects")
	var cmds []*exec.Cmd
	for i := 0; i < 4; i++ {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "GOCFS_STORE_CHILD_SRC="+src, "GOCFS_STORE_CHILD_DST="+dst)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("import %d failed: %v: %s", i, err, c.Stdout.(*bytes.Buffer))
		}
	}
	if n := checkStore(t, dst); n < 100 {
		t.Fatalf("only %d objects", n)
	}
}

func TestImportFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, bytes.Repeat([]byte("g"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, _ := fsverity.DigestFile(good, fsverity.SHA256)
	d := digest.MustNew(fsverity.SHA256, sum)
	st, err := store.Open(filepath.Join(dir, "objects"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := digest.Parse("aa" + strings.Repeat("b", 62))
	err = st.Import(context.Background(), []store.Source{
		{Path: good, Digest: d, Size: 1000},
		{Path: filepath.Join(dir, "missing"), Digest: missing, Size: -1},
	}, 1)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("import of a missing file: %v", err)
	}
	if n := checkStore(t, st.Dir()); n != 0 {
		t.Fatalf("a failed import published %d objects", n)
	}
}

func TestOpenErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := store.Open(f, store.Options{}); err == nil {
		t.Fatal("a file opened as a store")
	}
	if _, err := store.Open(filepath.Join(t.TempDir(), "none"), store.Options{}); err == nil {
		t.Fatal("a missing store opened without Create")
	}
}
