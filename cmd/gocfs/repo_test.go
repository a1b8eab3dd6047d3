package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/scan"
)

func TestRouteRepoArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"gocfs", "--repo", "/r", "init"}, []string{"gocfs", "repo", "--repo", "/r", "init"}},
		{[]string{"gocfs", "--repo=/r", "mount", "x", "/mnt"}, []string{"gocfs", "repo", "--repo=/r", "mount", "x", "/mnt"}},
		{[]string{"gocfs", "mount", "--repo", "/r"}, []string{"gocfs", "mount", "--repo", "/r"}},
		{[]string{"gocfs", "repo", "--repo", "/r", "gc"}, []string{"gocfs", "repo", "--repo", "/r", "gc"}},
		{[]string{"gocfs", "--repository"}, []string{"gocfs", "--repository"}},
		{[]string{"gocfs"}, []string{"gocfs"}},
		{[]string{"gocfs", "--user", "images"}, []string{"gocfs", "repo", "--user", "images"}},
		{[]string{"gocfs", "--hash=sha256", "compute-id", "d"}, []string{"gocfs", "repo", "--hash=sha256", "compute-id", "d"}},
		{[]string{"gocfs", "images"}, []string{"gocfs", "repo", "images"}},
		{[]string{"gocfs", "mount", "a", "b"}, []string{"gocfs", "mount", "a", "b"}},
		{[]string{"gocfs", "mkcomposefs", "a", "b"}, []string{"gocfs", "mkcomposefs", "a", "b"}},
	} {
		if got := routeRepoArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("routeRepoArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Completion requests are routed as the command lines they complete.
	in := []string{"gocfs", "__complete", "--repo", "/r", "mount", "--fuse", "yes", ""}
	want := []string{"gocfs", "__complete", "repo", "--repo", "/r", "mount", "--fuse=yes", ""}
	if got := rewriteArgs(in); !reflect.DeepEqual(got, want) {
		t.Errorf("rewriteArgs(%q) = %q, want %q", in, got, want)
	}
}

// runRepo runs "gocfs repo --repo DIR ARGS" in-process with stdin as its
// standard input.
func runRepo(t *testing.T, dir string, stdin io.Reader, args ...string) (int, string) {
	t.Helper()
	cmd := rootCommand()
	cmd.SetArgs(append([]string{"repo", "--repo", dir}, args...))
	if stdin != nil {
		cmd.SetIn(stdin)
	}
	return runCaptured(t, cmd.SetOut, cmd.SetErr, func() int { return run("gocfs", cmd) })
}

func TestRepoCommands(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{Seed: 3})
	// The default repository is cfsctl init's: fsverity-sha512-12, so the
	// image is mkcomposefs's (here --erofs-version=0: its default format)
	// with SHA-512 file digests, named by its SHA-512 fs-verity digest.
	root, err := repo.ReadDir(context.Background(), src, fsverity.SHA512, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := repo.ImageID(root, fsverity.SHA512, image.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := d.Hex()
	dir := filepath.Join(tmp, "repo")
	ok := func(code int, out string, args ...string) string {
		t.Helper()
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, out)
		}
		return out
	}
	repoOK := func(stdin io.Reader, args ...string) string {
		t.Helper()
		code, out := runRepo(t, dir, stdin, args...)
		return ok(code, out, args...)
	}

	if out := repoOK(nil, "init", "--json"); !strings.Contains(out, `"algorithm": "fsverity-sha512-12"`) {
		t.Errorf("init: %s", out)
	}
	// The directory as it is, in mkcomposefs's default format: its image.
	asIs := []string{"--no-propagate-usr-to-root", "--erofs-version=0"}
	if out := repoOK(nil, append([]string{"create-image", src, "refs/app/1"}, asIs...)...); strings.TrimSpace(out) != "sha512:"+want {
		t.Errorf("create-image printed %q; mkcomposefs's digest is %s", out, want)
	}
	var res repo.ImportResult
	if err := json.Unmarshal([]byte(repoOK(nil, append([]string{"create-image", "--json", src}, asIs...)...)), &res); err != nil || res.Image != want || res.NewObjects != 0 {
		t.Errorf("create-image --json: %+v, %v", res, err)
	}
	repoOK(nil, "tag", "other", "app/1")
	var images struct{ Images []imageEntry }
	if err := json.Unmarshal([]byte(repoOK(nil, "images", "--json")), &images); err != nil ||
		!reflect.DeepEqual(images.Images, []imageEntry{{"app/1", want}, {"other", want}}) {
		t.Errorf("images --json: %+v, %v", images, err)
	}
	if out := repoOK(nil, "images"); !strings.Contains(out, "│ app/1 ┆ "+want[:12]+" │") {
		t.Errorf("images: %q", out)
	}
	var objects []string
	for _, o := range strings.Fields(repoOK(nil, "image-objects", want)) {
		objects = append(objects, strings.TrimPrefix(o, "sha512:"))
	}
	if len(objects) != res.Objects || len(objects) == 0 {
		t.Fatalf("image-objects: %d objects, create-image said %d", len(objects), res.Objects)
	}

	// import-image: from standard input, into a repository that lacks the
	// objects, then into one that has them.
	img, err := os.ReadFile(filepath.Join(dir, "images", want))
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty")
	ok(runRepo(t, empty, nil, "init"))
	code, out := runRepo(t, empty, strings.NewReader(string(img)), "import-image", "x")
	if code == 0 || !strings.Contains(out, "does not have") || !strings.Contains(out, objects[0]) {
		t.Errorf("import-image without objects: exit %d: %s", code, out)
	}
	if out := repoOK(strings.NewReader(string(img)), "import-image", "imported"); strings.TrimSpace(out) != "sha512:"+want {
		t.Errorf("import-image printed %q, want %s", out, want)
	}

	if out := repoOK(nil, "fsck"); !strings.Contains(out, "status: ok") {
		t.Errorf("fsck: %s", out)
	}
	if out := repoOK(nil, "gc", "--dry-run"); out != "Dry run (no files deleted):\nObjects: 0 removed (0 bytes)\n" {
		t.Errorf("gc --dry-run: %s", out)
	}

	checkRepoDamageAndGC(t, tmp, dir, want, objects)
}

// checkRepoDamageAndGC damages the repository dir that holds the image
// want (references app/1, other, imported) of objects: fsck reports it;
// then removes the references: gc removes the image and objects.
func checkRepoDamageAndGC(t *testing.T, tmp, dir, want string, objects []string) {
	repoOK := func(stdin io.Reader, args ...string) string {
		t.Helper()
		code, out := runRepo(t, dir, stdin, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, out)
		}
		return out
	}
	// A flipped byte: fsck names the object and the image, exit 1.
	obj := filepath.Join(dir, "objects", objects[0][:2], objects[0][2:])
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(obj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runRepo(t, dir, nil, "fsck")
	if code != 1 || !strings.Contains(out, "fsck: object-corrupt: objects/"+objects[0][:2]+"/"+objects[0][2:]) ||
		!strings.Contains(out, "objects: "+fmt.Sprint(len(objects))+"/"+fmt.Sprint(len(objects)+1)+" ok") ||
		!strings.Contains(out, "used by image "+want+" (refs: app/1, imported, other)") ||
		!strings.Contains(out, "image-damaged: images/"+want) {
		t.Errorf("fsck of a corrupt object: exit %d:\n%s", code, out)
	}
	code, out = runRepo(t, dir, nil, "fsck", "--json")
	var fr fsckReply
	if err := json.Unmarshal([]byte(out), &fr); code != 0 || err != nil || fr.OK || fr.ObjectsCorrupted != 1 || fr.ImagesCorrupted != 1 || len(fr.Problems) != 2 {
		t.Errorf("fsck --json: exit %d, %v: %s", code, err, out)
	}
	os.Remove(obj)
	code, out = runRepo(t, dir, nil, "fsck")
	if code != 1 || !strings.Contains(out, "object-missing: objects/"+objects[0][:2]) {
		t.Errorf("fsck of a missing object: exit %d:\n%s", code, out)
	}

	for _, ref := range []string{"app/1", "refs/other", "imported"} {
		repoOK(nil, "untag", ref)
	}
	var g repo.GCResult
	if err := json.Unmarshal([]byte(repoOK(nil, "gc", "--json")), &g); err != nil || len(g.ImagesRemoved) != 1 || g.ObjectsRemoved != len(objects) {
		t.Errorf("gc --json: %+v, %v", g, err)
	}
	if out := repoOK(nil, "fsck"); !strings.Contains(out, "objects: 0/0 ok") {
		t.Errorf("fsck after gc: %s", out)
	}
	if code, out := runRepo(t, dir, nil, "untag", "app/1"); code == 0 {
		t.Errorf("untag of a missing reference: %s", out)
	}
	if code, out := runRepo(t, filepath.Join(tmp, "nope"), nil, "images"); code == 0 || !strings.Contains(out, "init") {
		t.Errorf("images in no repository: exit %d: %s", code, out)
	}
}

// The cfsctl form, "gocfs --repo PATH COMMAND", with the real binary, and
// a real mount (whose name is also a top-level gocfs command).
func TestRepoBinary(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.GocfsBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.MakeSampleTree(t, src, testutil.DefaultSampleOptions())
	dir := filepath.Join(tmp, "repo")
	gocfs := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("gocfs %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	gocfs("--repo", dir, "init", "--hash", "sha512")
	digest := strings.TrimSpace(gocfs("--repo="+dir, "create-image", "--no-propagate-usr-to-root", src, "rootfs"))
	if len(digest) != len("sha512:")+128 {
		t.Fatalf("create-image printed %q, want a SHA-512 digest", digest)
	}
	mnt := filepath.Join(tmp, "mnt")
	os.Mkdir(mnt, 0o755)
	gocfs("--repo", dir, "mount", "rootfs", mnt)
	defer mount.UnmountLazy(mnt)
	testutil.CompareTrees(t, src, mnt, testutil.CompareOptions{ComposefsWhiteouts: true})
	gocfs("umount", mnt)
	if out := gocfs("--repo", dir, "fsck"); !strings.Contains(out, "status: ok") {
		t.Errorf("fsck: %s", out)
	}
}
