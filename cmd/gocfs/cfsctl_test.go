package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/repo/splitstream"
)

// cli runs the real gocfs binary.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, bin: testutil.GocfsBinary(t)}
}

// run runs gocfs with args and stdin, and returns its standard output,
// standard error and exit status.
func (c *cli) run(stdin io.Reader, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), c.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("gocfs %q: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs gocfs and returns its standard output, failing the test unless
// it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(nil, args...)
	if code != 0 {
		c.t.Fatalf("gocfs %q: exit %d: %s%s", args, code, out, errs)
	}
	return out
}

// fails runs gocfs, expecting it to fail with a message containing want.
func (c *cli) fails(want string, args ...string) {
	c.t.Helper()
	out, errs, code := c.run(nil, args...)
	if code == 0 || !strings.Contains(errs, want) {
		c.t.Errorf("gocfs %q: exit %d, %q%q; want a failure saying %q", args, code, out, errs, want)
	}
}

// containerRoot makes a container root file system: a sample tree as
// /usr, a root directory with metadata of its own, /run with content,
// /etc with a small and a large file.
func containerRoot(t *testing.T, seed uint64) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "rootfs")
	opts := testutil.SampleOptions{Seed: seed}
	testutil.MakeSampleTree(t, filepath.Join(src, "usr"), opts)
	for _, d := range []string{"run/sub", "etc"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		"run/sub/pid": []byte("1234"),
		"etc/small":   []byte("small\n"),
		"etc/large":   bytes.Repeat([]byte(fmt.Sprintf("large %d ", seed)), 1000),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(src, 0o700); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1600000000, 5)
	if err := os.Chtimes(src, when, when); err != nil {
		t.Fatal(err)
	}
	return src
}

// dumpLines splits a composefs-dump into lines by path (the first field).
func dumpLines(dump string) map[string]string {
	m := make(map[string]string)
	for _, l := range strings.Split(strings.TrimSpace(dump), "\n") {
		m[strings.Fields(l)[0]] = l
	}
	return m
}

// TestCfsctlComputeID: compute-id is mkcomposefs's digest for the same
// options, create-image's digest with the repository's, SHA-512 without
// one; create-dumpfile is the dump of that image, /usr's metadata on the
// root and /run emptied unless --no-propagate-usr-to-root.
func TestCfsctlComputeID(t *testing.T) {
	c := newCLI(t)
	src := containerRoot(t, 1)
	line := func(s string) string { return strings.TrimSpace(s) }
	mk := line(c.ok("mkcomposefs", "--print-digest-only", src))
	mk1 := line(c.ok("mkcomposefs", "--print-digest-only", "--min-version=1", src))
	asIs := []string{"--hash", "sha256", "--no-repo", "compute-id", "--no-propagate-usr-to-root"}
	if got := line(c.ok(append(asIs, "--erofs-version", "0", src)...)); got != mk {
		t.Errorf("compute-id --erofs-version 0 %s, mkcomposefs %s", got, mk)
	}
	if got := line(c.ok(append(asIs, src)...)); got != mk1 {
		t.Errorf("compute-id %s, mkcomposefs --min-version=1 %s", got, mk1)
	}
	if got := line(c.ok("--no-repo", "compute-id", src)); len(got) != 128 {
		t.Errorf("compute-id without --hash or a repository: %q, want a SHA-512 digest", got)
	}

	// With the container-root transform: what create-image stores, and
	// what create-dumpfile prints.
	dump := c.ok("--hash", "sha256", "--no-repo", "create-dumpfile", src)
	lines := dumpLines(dump)
	root, usr := strings.Fields(lines["/"]), strings.Fields(lines["/usr"])
	if root[2] != usr[2] || root[7] != usr[7] || lines["/run/sub"] != "" || lines["/run"] == "" {
		t.Errorf("create-dumpfile: root %q, /usr %q, /run/sub %q: want the root with /usr's mode and mtime, /run empty", root, usr, lines["/run/sub"])
	}
	fromDump := line(c.runIn(dump, "mkcomposefs", "--from-file", "--min-version=1", "--print-digest-only", "-"))
	for _, alg := range []string{"sha256", "sha512"} {
		dir := filepath.Join(t.TempDir(), "repo")
		c.ok("--repo", dir, "init", "--hash", alg)
		id := line(c.ok("--repo", dir, "compute-id", src))
		created := line(c.ok("--repo", dir, "create-image", src, "app"))
		if created != alg+":"+id {
			t.Errorf("%s: create-image printed %s, compute-id %s", alg, created, id)
		}
		if alg == "sha256" && id != fromDump {
			t.Errorf("compute-id %s, mkcomposefs of create-dumpfile %s", id, fromDump)
		}
	}
	// A repository of V0 images (init --erofs-version 0): compute-id takes
	// its format from meta.json, as create-image does; --erofs-version
	// still overrides it.
	v0 := filepath.Join(t.TempDir(), "v0")
	c.ok("--repo", v0, "init", "--hash", "sha256", "--erofs-version", "0")
	id0 := line(c.ok("--repo", v0, "compute-id", "--no-propagate-usr-to-root", src))
	if created := line(c.ok("--repo", v0, "create-image", "--no-propagate-usr-to-root", src)); id0 != mk || created != "sha256:"+mk {
		t.Errorf("V0 repository: compute-id %s, create-image %s, mkcomposefs %s", id0, created, mk)
	}
	if got := line(c.ok("--repo", v0, "--erofs-version", "1", "compute-id", "--no-propagate-usr-to-root", src)); got != mk1 {
		t.Errorf("V0 repository, --erofs-version 1: compute-id %s, mkcomposefs --min-version=1 %s", got, mk1)
	}
	c.fails("/usr", "--no-repo", "compute-id", filepath.Join(src, "etc"))
	c.fails("--bootable", "--no-repo", "compute-id", "--bootable", src)
	c.fails("keep-user-xattrs", "--no-repo", "compute-id", "--xattrs", "all", src)
	c.fails("not supported", "--no-repo", "--erofs-version", "2", "compute-id", src)
}

// runIn runs gocfs with stdin, failing the test unless it exits 0.
func (c *cli) runIn(stdin string, args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(strings.NewReader(stdin), args...)
	if code != 0 {
		c.t.Fatalf("gocfs %q: exit %d: %s", args, code, errs)
	}
	return out
}

// cfsctlRepo is a SHA-256 repository with the image of a container root
// as "app".
type cfsctlRepo struct {
	*cli
	dir, src, digest string
}

func newCfsctlRepo(t *testing.T) *cfsctlRepo {
	c := newCLI(t)
	r := &cfsctlRepo{cli: c, dir: filepath.Join(t.TempDir(), "repo"), src: containerRoot(t, 2)}
	c.ok("--repo", r.dir, "init", "--hash", "sha256")
	out := strings.TrimSpace(c.ok("--repo", r.dir, "create-image", r.src, "app"))
	r.digest = strings.TrimPrefix(out, "sha256:")
	if len(r.digest) != 64 || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("create-image printed %q, want sha256:DIGEST", out)
	}
	return r
}

func (r *cfsctlRepo) repo(args ...string) string {
	r.t.Helper()
	return r.ok(append([]string{"--repo", r.dir}, args...)...)
}

func (r *cfsctlRepo) image() string { return filepath.Join(r.dir, "images", r.digest) }

// TestCfsctlImages: images, image-objects, dump-files and import-image,
// against composefs-info's view of the same image.
func TestCfsctlImages(t *testing.T) {
	r := newCfsctlRepo(t)
	r.repo("tag", "other/name", "app")
	want := "┌────────────┬──────────────┐\n" +
		"│ NAME       ┆ DIGEST       │\n" +
		"╞════════════╪══════════════╡\n" +
		"│ app        ┆ " + r.digest[:12] + " │\n" +
		"├╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤\n" +
		"│ other/name ┆ " + r.digest[:12] + " │\n" +
		"└────────────┴──────────────┘\n"
	if got := r.repo("images"); got != want {
		t.Errorf("images:\n%s\nwant:\n%s", got, want)
	}
	if got := r.repo("list-images", "--no-trunc"); !strings.Contains(got, "│ app        ┆ "+r.digest+" │") {
		t.Errorf("images --no-trunc:\n%s", got)
	}
	var js struct{ Images []imageEntry }
	if err := json.Unmarshal([]byte(r.repo("images", "--json")), &js); err != nil ||
		!reflect.DeepEqual(js.Images, []imageEntry{{"app", r.digest}, {"other/name", r.digest}}) {
		t.Errorf("images --json: %+v, %v", js, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	r.ok("--repo", empty, "init", "--hash", "sha256")
	if got := r.ok("--repo", empty, "images"); got != "No images found\n" {
		t.Errorf("images of an empty repository: %q", got)
	}

	// image-objects lists what composefs-info objects lists.
	var infoObjs, objs []string
	for _, p := range strings.Fields(r.ok("composefs-info", "objects", r.image())) {
		infoObjs = append(infoObjs, "sha256:"+strings.Replace(p, "/", "", 1))
	}
	objs = strings.Fields(r.repo("image-objects", "refs/app"))
	sort.Strings(infoObjs)
	if len(objs) < 3 || !reflect.DeepEqual(objs, infoObjs) {
		t.Errorf("image-objects %q, composefs-info objects %q", objs, infoObjs)
	}

	r.checkDumpFiles()

	// import-image: refused where objects are missing, stored where not.
	img, err := os.ReadFile(r.image())
	if err != nil {
		t.Fatal(err)
	}
	if _, errs, code := r.run(bytes.NewReader(img), "--repo", empty, "import-image", "x"); code == 0 || !strings.Contains(errs, "does not have") {
		t.Errorf("import-image without the objects: exit %d: %s", code, errs)
	}
	if got := r.runIn(string(img), "--repo", r.dir, "import-image", "imported"); got != "sha256:"+r.digest+"\n" {
		t.Errorf("import-image printed %q", got)
	}
}

// checkDumpFiles compares dump-files with composefs-info dump.
func (r *cfsctlRepo) checkDumpFiles() {
	t := r.t
	info := dumpLines(r.ok("composefs-info", "dump", r.image()))
	got := r.repo("dump-files", "app", "/etc/large", "etc")
	want := info["/etc/large"] + "\n" + info["/etc"] + "\n" + info["/etc/large"] + "\n" + info["/etc/small"] + "\n"
	if got != want {
		t.Errorf("dump-files:\n%s\nwant:\n%s", got, want)
	}
	payload := strings.Fields(info["/etc/large"])[8]
	got = r.repo("dump-files", "--backing-path-only", r.digest, "/etc/large", "/etc/small")
	if want := "/etc/large " + payload + "\n/etc/small inline\n"; got != want {
		t.Errorf("dump-files --backing-path-only: %q, want %q", got, want)
	}
	r.fails("is a directory", "--repo", r.dir, "dump-files", "--backing-path-only", "app", "/etc")
	r.fails("not found", "--repo", r.dir, "dump-files", "app", "/nope")
}

// TestCfsctlCat: cat rebuilds a split stream, byte for byte, and prints an
// object; a corrupt object fails it with nothing written.
func TestCfsctlCat(t *testing.T) {
	r := newCfsctlRepo(t)
	large, err := os.ReadFile(filepath.Join(r.src, "etc/large"))
	if err != nil {
		t.Fatal(err)
	}
	objs := strings.Fields(r.repo("image-objects", "app"))
	var largeID string
	for _, o := range objs {
		if out := r.repo("cat", o); out == string(large) {
			largeID = o
		}
	}
	if largeID == "" {
		t.Fatalf("no object of image-objects cats as /etc/large")
	}
	if got := r.repo("cat", strings.TrimPrefix(largeID, "sha256:")); got != string(large) {
		t.Errorf("cat HEX: %d bytes, want /etc/large's %d", len(got), len(large))
	}

	rp, err := repo.Open(r.dir, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := rp.ParseDigest(strings.TrimPrefix(largeID, "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	sw, _ := splitstream.NewWriter(rp.Algorithm(), splitstream.ContentTypeOCILayer)
	sw.Write([]byte("header"))
	sw.WriteExternal(d, uint64(len(large)))
	sw.Write([]byte("trailer"))
	w := rp.NewObjectWriter()
	f, err := w.Create()
	if err != nil {
		t.Fatal(err)
	}
	sw.Finish(f)
	sd, err := f.Commit()
	if err != nil || w.Sync() != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(r.dir, "streams", "refs"), 0o755)
	os.Symlink("../objects/"+sd.ObjectPath(), filepath.Join(r.dir, "streams", "layer-id"))
	os.Symlink("../layer-id", filepath.Join(r.dir, "streams", "refs", "layer"))
	want := "header" + string(large) + "trailer"
	for _, name := range []string{"layer-id", "refs/layer"} {
		if got := r.repo("cat", name); got != want {
			t.Errorf("cat %s: %d bytes, want %d", name, len(got), len(want))
		}
	}
	obj := rp.ObjectPath(d)
	os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, append([]byte("X"), large[1:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := r.run(nil, "--repo", r.dir, "cat", "refs/layer"); code == 0 || out != "" || !strings.Contains(errs, "digest") {
		t.Errorf("cat with a corrupt object: exit %d, %d bytes out, %q", code, len(out), errs)
	}
	r.fails("not found", "--repo", r.dir, "cat", "nope")
}

// TestCfsctlGCFsck: gc --dry-run reports what gc then removes and removes
// nothing; --root keeps an image; fsck's report, --metadata-only, --json.
func TestCfsctlGCFsck(t *testing.T) {
	r := newCfsctlRepo(t)
	old := strings.TrimPrefix(strings.TrimSpace(r.repo("create-image", containerRoot(t, 3), "old")), "sha256:")
	r.repo("untag", "old")
	objects := func() int {
		n := 0
		filepath.Walk(filepath.Join(r.dir, "objects"), func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && fi.Mode().IsRegular() {
				n++
			}
			return nil
		})
		return n
	}
	before := objects()
	if got := r.repo("gc", "-n", "-r", old); got != "Dry run (no files deleted):\nObjects: 0 removed (0 bytes)\n" {
		t.Errorf("gc -n -r OLD: %q", got)
	}
	dry := r.repo("gc", "--dry-run")
	if !strings.HasPrefix(dry, "Dry run (no files deleted):\nObjects: ") || !strings.HasSuffix(dry, "Pruned symlinks: 1 images, 0 streams\n") {
		t.Errorf("gc --dry-run: %q", dry)
	}
	if n := objects(); n != before {
		t.Errorf("gc --dry-run removed %d objects", before-n)
	}
	if got := r.repo("gc"); "Dry run (no files deleted):\n"+got != dry {
		t.Errorf("gc: %q; the dry run said %q", got, dry)
	}
	var removed int
	fmt.Sscanf(strings.Split(dry, "\n")[1], "Objects: %d removed", &removed)
	if n := objects(); removed == 0 || n != before-removed {
		t.Errorf("gc removed %d objects, said %d", before-n, removed)
	}

	n := objects()
	want := fmt.Sprintf("meta.json: ok\nobjects: %d/%d ok\nstreams: 0/0 ok\nimages: 1/1 ok\nstatus: ok\n", n, n)
	if got := r.repo("fsck"); got != want {
		t.Errorf("fsck:\n%s\nwant:\n%s", got, want)
	}
	large := strings.Fields(r.repo("dump-files", "--backing-path-only", "app", "/etc/large"))[1]
	obj := filepath.Join(r.dir, "objects", large)
	os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := r.repo("fsck", "--metadata-only"); !strings.Contains(got, "objects: 0/0 ok") || !strings.HasSuffix(got, "status: ok\n") {
		t.Errorf("fsck --metadata-only of a corrupt object: %q", got)
	}
	out, errs, code := r.run(nil, "--repo", r.dir, "fsck")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("objects: %d/%d ok\n", n-1, n)) || !strings.Contains(out, "images: 0/1 ok\n") ||
		!strings.Contains(out, "status: 2 error(s)\n  - fsck: image-damaged: images/"+r.digest) ||
		!strings.Contains(out, "  - fsck: object-corrupt: objects/"+large) || !strings.Contains(errs, "integrity check failed") {
		t.Errorf("fsck of a corrupt object: exit %d:\n%s%s", code, out, errs)
	}
	var reply fsckReply
	out, _, code = r.run(nil, "--repo", r.dir, "fsck", "--json")
	if err := json.Unmarshal([]byte(out), &reply); err != nil || code != 0 || reply.OK || len(reply.Errors) != 2 || reply.ObjectsCorrupted != 1 {
		t.Errorf("fsck --json: exit %d, %v: %s", code, err, out)
	}
}

// TestCfsctlGlobalOptions: the repository options, --version, and
// "transaction" holding the lock.
func TestCfsctlGlobalOptions(t *testing.T) {
	r := newCfsctlRepo(t)
	if got := r.ok("--version"); !strings.HasPrefix(got, "gocfs ") {
		t.Errorf("--version: %q", got)
	}
	if got := r.ok("--repo", r.dir, "-V"); !strings.HasPrefix(got, "gocfs ") {
		t.Errorf("--repo DIR -V: %q", got)
	}
	home := t.TempDir()
	r.env = []string{"HOME=" + home}
	r.ok("--user", "init")
	if _, err := os.Stat(filepath.Join(home, ".var/lib/composefs/meta.json")); err != nil {
		t.Errorf("--user init: %v", err)
	}
	r.fails("/sysroot/composefs", "--system", "images")
	r.fails("one of --repo, --user and --system", "--repo", r.dir, "--user", "images")
	r.fails("but --hash sha512 was specified", "--repo", r.dir, "--hash", "sha512", "images")
	r.ok("--repo", r.dir, "--hash", "sha256", "images")
	r.fails("--no-repo is only supported", "--repo", r.dir, "--no-repo", "images")
	if !r.secure() {
		r.fails("does not have fs-verity enabled", "--repo", r.dir, "--require-verity", "images")
	}
	if err := os.Remove(filepath.Join(r.dir, "meta.json")); err != nil {
		t.Fatal(err)
	}
	r.ok("--repo", r.dir, "images")
	r.fails("must be initialized", "--repo", r.dir, "--no-upgrade", "images")

	// transaction holds the lock shared until a signal: gc can't have it.
	cmd := exec.Command(r.bin, "--repo", r.dir, "transaction")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	locked := func() bool {
		fd, err := unix.Open(r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil
	}
	for i := 0; !locked(); i++ {
		if i == 100 {
			t.Fatal("transaction did not take the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil || locked() {
		t.Errorf("transaction after SIGTERM: %v, lock still held: %v", err, locked())
	}
}

// secure reports whether the repository requires fs-verity (meta.json has
// it, where the file system supports it).
func (r *cfsctlRepo) secure() bool {
	rp, err := repo.Open(r.dir, repo.Options{ReadOnly: true})
	if err != nil {
		r.t.Fatal(err)
	}
	defer rp.Close()
	return rp.Secure()
}

// TestCfsctlMount: cfsctl's mount options: --fuse yes (in the background,
// as cfsctl), --upperdir/--workdir read-only unless --read-write.
func TestCfsctlMount(t *testing.T) {
	testutil.RequireRoot(t)
	r := newCfsctlRepo(t)
	cmpOpts := testutil.CompareOptions{IgnoreRoot: true, NoXattrs: true} // the transform drops user.* xattrs
	if _, err := os.Stat("/dev/fuse"); err == nil {
		mnt := mountPoint(t)
		r.repo("mount", "--fuse", "yes", "app", mnt)
		if mi := testutil.MountAt(t, mnt); mi == nil || mi.FSType != "fuse.composefs" {
			t.Fatalf("mount --fuse yes: %+v, want a FUSE mount, the server in the background", mi)
		}
		testutil.CompareTrees(t, filepath.Join(r.src, "usr"), filepath.Join(mnt, "usr"), cmpOpts)
		r.ok("umount", mnt)
	}
	upper, work := t.TempDir(), t.TempDir()
	r.fails("--upperdir and --workdir go together", "--repo", r.dir, "mount", "--upperdir", upper, "app", t.TempDir())
	r.fails("--read-write needs --upperdir", "--repo", r.dir, "mount", "--read-write", "app", t.TempDir())
	for _, rw := range []bool{false, true} {
		mnt := mountPoint(t)
		args := []string{"mount", "--fuse", "no", "--upperdir", upper, "--workdir", work, "app", mnt}
		if rw {
			args = append(args, "--read-write")
		}
		r.repo(args...)
		err := os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644)
		if rw != (err == nil) {
			t.Errorf("--read-write %v: writing gives %v", rw, err)
		}
		r.ok("umount", mnt)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("the write did not reach --upperdir: %v", err)
	}
}

func TestJoinFuseValue(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"gocfs", "repo", "mount", "--fuse", "yes", "a", "b"}, []string{"gocfs", "repo", "mount", "--fuse=yes", "a", "b"}},
		{[]string{"gocfs", "mount", "--fuse", "img", "mnt"}, []string{"gocfs", "mount", "--fuse", "img", "mnt"}},
		{[]string{"gocfs", "mount", "--", "--fuse", "no"}, []string{"gocfs", "mount", "--", "--fuse", "no"}},
	} {
		if got := joinFuseValue(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("joinFuseValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUTF8Table(t *testing.T) {
	// comfy-table's UTF8_FULL, as its documentation draws it.
	want := "┌───────┬───────┐\n" +
		"│ Hello ┆ there │\n" +
		"╞═══════╪═══════╡\n" +
		"│ a     ┆ b     │\n" +
		"├╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌┤\n" +
		"│ c     ┆ d     │\n" +
		"└───────┴───────┘\n"
	if got := utf8Table([]string{"Hello", "there"}, [][]string{{"a", "b"}, {"c", "d"}}); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}
