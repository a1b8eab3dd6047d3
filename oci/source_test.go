package oci

import (
	"os"
	"path/filepath"
	"testing"
)

// SplitPathRef: the longest part before a colon that exists is the path,
// so that a reference may be NAME:TAG and a path may hold colons.
func TestSplitPathRef(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"image.tar", "odd:name.tar"} {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, odd := filepath.Join(dir, "image.tar"), filepath.Join(dir, "odd:name.tar")
	for _, c := range []struct{ in, path, ref string }{
		{file, file, ""},
		{file + ":v1", file, "v1"},
		{file + ":example.org/app:v1", file, "example.org/app:v1"},
		{odd, odd, ""},
		{odd + ":example.org/app:v1", odd, "example.org/app:v1"},
		{dir + "/new:example.org/app:v1", dir + "/new", "example.org/app:v1"}, // to be made
		{"relative", "relative", ""},
	} {
		if p, r := SplitPathRef(c.in); p != c.path || r != c.ref {
			t.Errorf("SplitPathRef(%q) = %q, %q; want %q, %q", c.in, p, r, c.path, c.ref)
		}
	}
}
