package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestComplete asks the binary for completions, as the shell scripts do
// ("gocfs __complete ARGS… PARTIAL"), on a real repository.
func TestComplete(t *testing.T) {
	r := newCfsctlRepo(t)
	r.repo("tag", "other/name", "app")
	os.MkdirAll(filepath.Join(r.dir, "streams", "refs"), 0o755)
	os.Symlink("../objects/00/00", filepath.Join(r.dir, "streams", "layer-id"))
	os.Symlink("../layer-id", filepath.Join(r.dir, "streams", "refs", "layer"))
	complete := func(args ...string) ([]string, string) {
		t.Helper()
		out := r.ok(append([]string{"__complete"}, args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[:len(lines)-1], lines[len(lines)-1]
	}
	for _, tc := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"--repo", r.dir, "mount", ""}, []string{"app", "refs/app", "other/name", "refs/other/name"}, ":4"},
		{[]string{"--repo", r.dir, "mount", "o"}, []string{"other/name"}, ":4"},
		{[]string{"--repo", r.dir, "mount", "--fuse", "yes", "refs/o"}, []string{"refs/other/name"}, ":4"},
		{[]string{"--repo", r.dir, "mount", "app", ""}, nil, ":0"}, // the mount point: files
		{[]string{"repo", "--repo", r.dir, "image-objects", "a"}, []string{"app"}, ":4"},
		{[]string{"--repo=" + r.dir, "dump-files", "ot"}, []string{"other/name"}, ":4"},
		{[]string{"--repo", r.dir, "gc", "--root", "a"}, []string{"app"}, ":4"},
		{[]string{"--repo", r.dir, "untag", "refs/a"}, []string{"refs/app"}, ":4"},
		{[]string{"--repo", r.dir, "cat", ""}, []string{"layer-id", "refs/layer"}, ":4"},
		{[]string{"--repo", filepath.Join(r.dir, "nope"), "mount", ""}, nil, ":4"}, // no repository: nothing, quietly
	} {
		got, directive := complete(tc.args...)
		if !reflect.DeepEqual(got, tc.want) && len(got)+len(tc.want) > 0 || directive != tc.directive {
			t.Errorf("__complete %q: %q %s, want %q %s", tc.args, got, directive, tc.want, tc.directive)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := r.ok("completion", shell); !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: no dynamic completion in the script", shell)
		}
	}
}
