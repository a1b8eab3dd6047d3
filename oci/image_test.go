package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/scan"
)

// testLayers are the layers of the test image: everything a layer can
// hold and every way a layer can change the ones below.
func testLayers() [][]member {
	big := randBytes(10, 3<<20+123) // stored while read (> memObjectMax)
	t1 := time.Unix(1710000000, 0)
	base := []member{
		dirM("./", 0o755).with(func(m *member) { m.mtime = time.Unix(1690000000, 0) }),
		dirM("etc/", 0o755).with(func(m *member) { m.xattrs = map[string]string{"user.dir": "on etc"} }),
		fileM("etc/empty", 0o644, nil),
		fileM("etc/small", 0o640, []byte("small file\n")),
		fileM("etc/64", 0o644, randBytes(1, 64)),
		fileM("etc/65", 0o644, randBytes(2, 65)),
		fileM("etc/owned", 0o644, randBytes(3, 300)).with(func(m *member) { m.uid, m.gid = 1000, 1001 }),
		fileM("etc/nanos", 0o644, []byte("ns")).with(func(m *member) { m.mtime = time.Unix(1700000000, 987654321) }),
		symlinkM("etc/tool-link", "../usr/bin/tool"),
		linkM("etc/small-hl", "etc/small"),
		dirM("usr/", 0o755),
		dirM("usr/bin/", 0o755),
		fileM("usr/bin/tool", 0o755, textBytes(4, 50000)).with(func(m *member) {
			m.xattrs = map[string]string{"user.comment": "a tool", "trusted.gocfs": "t"}
		}),
		fileM("usr/bin/suid", 0o4755, randBytes(5, 100)),
		linkM("usr/bin/tool-hl", "usr/bin/tool"),
		dirM("usr/lib/", 0o755),
		fileM("usr/lib/big", 0o644, big),
		fileM("usr/lib/medium", 0o644, randBytes(6, 200000)),
		dirM("dev/", 0o755),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3, mtime: t0},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8, minor: 0, mtime: t0},
		{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600, mtime: t0},
		{name: "dev/whiteout", typ: tar.TypeChar, mode: 0o000, mtime: t0},
		dirM("opt/", 0o755),
		dirM("opt/old/", 0o755),
		fileM("opt/old/a", 0o644, []byte("a")),
		fileM("opt/old/b", 0o644, randBytes(7, 5000)),
		fileM("opt/gone", 0o644, []byte("gone")),
		dirM("var/", 0o755),
		dirM("var/keep/", 0o755),
		fileM("var/keep/x", 0o644, []byte("x")),
		fileM(strings.Repeat("n", 120)+"/"+strings.Repeat("l", 255), 0o644, randBytes(8, 1000)),
		// Parents without members of their own.
		fileM("srv/implicit/deep/file", 0o644, []byte("deep")),
	}
	second := []member{
		whiteoutM("opt/.wh.gone"),
		whiteoutM("opt/old/.wh..wh..opq"),
		dirM("opt/old/", 0o700).with(func(m *member) { m.mtime = t1 }),
		fileM("opt/old/new", 0o644, []byte("new in an opaque directory")),
		// A file becomes a directory, a directory a file.
		dirM("etc/65/", 0o755),
		fileM("etc/65/inside", 0o644, []byte("inside")),
		fileM("var/keep", 0o600, []byte("now a file")),
		// A hard link to a file of a lower layer, then the first name
		// of a hard-linked file goes.
		linkM("usr/bin/tool-hl2", "usr/bin/tool"),
		whiteoutM("etc/.wh.small"),
		// New attributes for a directory, its xattrs gone.
		dirM("etc/", 0o750).with(func(m *member) { m.mtime = t1; m.uid = 2 }),
		dirM("usr/", 0o755).with(func(m *member) { m.mtime = t1 }),
		fileM("usr/share/doc/readme", 0o644, textBytes(9, 3000)),
		whiteoutM("nonexistent/.wh.thing"),
		whiteoutM("usr/.wh.nothing"),
	}
	third := []member{
		// The same content again, under another name (deduplicated).
		fileM("usr/lib/big-copy", 0o644, big),
		// tool replaced: its other names keep the old content.
		fileM("usr/bin/tool", 0o755, []byte("replaced")),
		symlinkM("usr/lib/medium", "big"),
		whiteoutM(".wh..wh.plnk"),
		fileM("var/keep", 0o644, []byte("replaced again")),
	}
	return [][]member{base, second, third}
}

// testImage builds the test image: a gzip, a zstd and an uncompressed
// layer.
func testImage(t testing.TB, layers [][]member) v1.Image {
	t.Helper()
	img := empty.Image
	for i, ms := range layers {
		data := makeTar(t, ms)
		var l v1.Layer
		var err error
		opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		switch i % 3 {
		case 0:
			l, err = tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer))
		case 1:
			l, err = tarball.LayerFromOpener(opener, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		default:
			l = static.NewLayer(data, types.OCIUncompressedLayer)
		}
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Env = []string{"PATH=/usr/bin"}
	cf.Config.Cmd = []string{"/usr/bin/tool"}
	cf.Config.Labels = map[string]string{"test": "gocfs"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

// writeLayout writes img as an OCI layout tagged tag.
func writeLayout(t testing.TB, img v1.Image, tag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// extract applies layers to the directory root with the operating
// system's operations, following the rules docs/oci.md states: the
// reference the merged image is checked against.
func extract(t testing.TB, root string, layers [][]member) {
	t.Helper()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("extract: %s: %v", what, err)
		}
	}
	dirTimes := map[string]time.Time{}
	forget := func(rel string) {
		for k := range dirTimes {
			if k == rel || strings.HasPrefix(k, rel+"/") {
				delete(dirTimes, k)
			}
		}
	}
	abs := func(rel string) string { return filepath.Join(root, rel) }
	setXattrs := func(rel string, xs map[string]string) {
		p := abs(rel)
		for _, n := range listXattrs(p) {
			must("removexattr "+rel, unix.Lremovexattr(p, n))
		}
		for k, v := range xs {
			must("setxattr "+rel, unix.Lsetxattr(p, k, []byte(v), 0))
		}
	}
	attrs := func(rel string, m member, mode uint32) {
		p := abs(rel)
		must("chown "+rel, os.Lchown(p, m.uid, m.gid))
		if m.typ != tar.TypeSymlink {
			must("chmod "+rel, unix.Fchmodat(unix.AT_FDCWD, p, mode, 0))
		}
		setXattrs(rel, m.xattrs)
		if m.typ == tar.TypeDir {
			dirTimes[rel] = m.mtime
			return
		}
		ts := []unix.Timespec{unix.NsecToTimespec(m.mtime.UnixNano()), unix.NsecToTimespec(m.mtime.UnixNano())}
		must("utimes "+rel, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	implicit := func(rel string) {
		must("mkdir "+rel, os.Mkdir(abs(rel), 0o755))
		attrs(rel, member{typ: tar.TypeDir, mtime: time.Unix(0, 0)}, 0o755)
	}
	must("mkdir", os.MkdirAll(root, 0o755))
	attrs("", member{typ: tar.TypeDir, mtime: time.Unix(0, 0)}, 0o755)
	for _, layer := range layers {
		for _, m := range layer {
			// Members in archive order, whiteouts included, as
			// composefs-rs's process_entry (crates/composefs-oci/src/image.rs).
			rel := strings.Trim(path.Clean("/"+m.name), "/")
			if extractWhiteout(t, root, rel, forget) {
				continue
			}
			if rel == "" {
				attrs("", m, uint32(m.mode))
				continue
			}
			parts := strings.Split(rel, "/")
			for i := 1; i < len(parts); i++ {
				pre := strings.Join(parts[:i], "/")
				if _, err := os.Lstat(abs(pre)); err != nil {
					implicit(pre)
				}
			}
			p := abs(rel)
			fi, err := os.Lstat(p)
			if err == nil && fi.IsDir() && m.typ == tar.TypeDir {
				attrs(rel, m, uint32(m.mode))
				continue
			}
			if err == nil {
				must("remove "+rel, os.RemoveAll(p))
				forget(rel)
			}
			switch m.typ {
			case tar.TypeDir:
				must("mkdir "+rel, os.Mkdir(p, 0o700))
			case tar.TypeReg:
				must("write "+rel, os.WriteFile(p, m.content, 0o600))
			case tar.TypeSymlink:
				must("symlink "+rel, os.Symlink(m.link, p))
			case tar.TypeLink:
				must("link "+rel, os.Link(abs(m.link), p))
				continue
			case tar.TypeChar:
				must("mknod "+rel, unix.Mknod(p, unix.S_IFCHR, int(unix.Mkdev(uint32(m.major), uint32(m.minor)))))
			case tar.TypeBlock:
				must("mknod "+rel, unix.Mknod(p, unix.S_IFBLK, int(unix.Mkdev(uint32(m.major), uint32(m.minor)))))
			case tar.TypeFifo:
				must("mkfifo "+rel, unix.Mkfifo(p, 0o600))
			}
			attrs(rel, m, uint32(m.mode))
		}
	}
	setDirTimes(t, root, dirTimes)
	containerRoot(t, root)
}

// extractWhiteout applies the member rel of a layer if it is a whiteout
// (removing its target, if its directory is there) or an opaque marker
// (emptying its directory), and reports whether it was one.
func extractWhiteout(t testing.TB, root, rel string, forget func(string)) bool {
	t.Helper()
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	abs := func(rel string) string { return filepath.Join(root, rel) }
	switch {
	case base == ".wh..wh..opq":
		if fi, err := os.Lstat(abs(dir)); err == nil && fi.IsDir() {
			ents, _ := os.ReadDir(abs(dir))
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(abs(dir), e.Name())); err != nil {
					t.Fatal(err)
				}
				forget(path.Join(dir, e.Name()))
			}
		}
	case strings.HasPrefix(base, ".wh..wh."):
	case strings.HasPrefix(base, ".wh."):
		target := path.Join(dir, base[4:])
		if fi, err := os.Lstat(abs(dir)); err == nil && fi.IsDir() {
			if err := os.RemoveAll(abs(target)); err != nil {
				t.Fatal(err)
			}
			forget(target)
		}
	default:
		return false
	}
	return true
}

// setDirTimes sets the directories' mtimes last, deepest first: making
// entries changes them.
func setDirTimes(t testing.TB, root string, dirTimes map[string]time.Time) {
	t.Helper()
	rels := make([]string, 0, len(dirTimes))
	for k := range dirTimes {
		rels = append(rels, k)
	}
	sort.Slice(rels, func(i, j int) bool {
		return strings.Count(rels[i], "/") > strings.Count(rels[j], "/") || rels[j] == "" && rels[i] != ""
	})
	for _, rel := range rels {
		mt := dirTimes[rel]
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, rel), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("utimes %s: %v", rel, err)
		}
	}
}

// containerRoot applies composefs-rs's transform_for_oci
// (crates/composefs/src/generic_tree.rs: copy_root_metadata_from_usr,
// canonicalize_run, filter_xattrs with the default allowlist
// CONTAINER_XATTR_ALLOWLIST = security.capability) to the extracted
// directory root, with the operating system's operations: the root gets
// /usr's mode, owner, xattrs and mtime, /run is emptied and gets /usr's
// mtime, and every file loses its xattrs but security.capability. Without
// /usr (cfsctl refuses such images; gocfs keeps the root as it is) only
// the xattrs are filtered.
func containerRoot(t testing.TB, root string) {
	t.Helper()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("container root: %s: %v", what, err)
		}
	}
	must("walk", filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, n := range listXattrs(p) {
			if n != "security.capability" {
				must("removexattr "+p, unix.Lremovexattr(p, n))
			}
		}
		return nil
	}))
	var usr unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "usr"), &usr); err != nil || usr.Mode&unix.S_IFMT != unix.S_IFDIR {
		return
	}
	must("chown /", os.Lchown(root, int(usr.Uid), int(usr.Gid)))
	must("chmod /", unix.Chmod(root, usr.Mode&0o7777))
	for _, n := range listXattrs(root) {
		must("removexattr /", unix.Lremovexattr(root, n))
	}
	for _, n := range listXattrs(filepath.Join(root, "usr")) {
		v := make([]byte, 64<<10)
		sz, err := unix.Lgetxattr(filepath.Join(root, "usr"), n, v)
		must("getxattr /usr", err)
		must("setxattr /", unix.Lsetxattr(root, n, v[:sz], 0))
	}
	ts := []unix.Timespec{usr.Mtim, usr.Mtim}
	run := filepath.Join(root, "run")
	if fi, err := os.Lstat(run); err == nil && fi.IsDir() {
		ents, err := os.ReadDir(run)
		must("readdir /run", err)
		for _, e := range ents {
			must("remove /run/"+e.Name(), os.RemoveAll(filepath.Join(run, e.Name())))
		}
		must("utimes /run", unix.UtimesNanoAt(unix.AT_FDCWD, run, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	must("utimes /", unix.UtimesNanoAt(unix.AT_FDCWD, root, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// listXattrs lists the names of p's xattrs (not following a symlink).
func listXattrs(p string) []string {
	sz, _ := unix.Llistxattr(p, nil)
	if sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	var names []string
	for _, n := range strings.Split(string(buf[:max(sz, 0)]), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// scanDigest is the digest, made with r's algorithm, of the image
// mkcomposefs makes of dir with hard links preserved, in r's format
// version (--min-version=1 for a V1 repository).
func scanDigest(t testing.TB, r *repo.Repo, dir string) string {
	t.Helper()
	root, err := repo.ReadDir(context.Background(), dir, r.Algorithm(), scan.Options{PreserveHardlinks: true})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := r.ImageOptions()
	if err != nil {
		t.Fatal(err)
	}
	d, err := repo.ImageID(root, r.Algorithm(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d.Hex()
}

// checkPulled checks a pulled image against the expected rootfs: the
// canonical digest, and, mounted, the same tree.
func checkPulled(t *testing.T, r *repo.Repo, res *PullResult, want string) {
	t.Helper()
	if got := scanDigest(t, r, want); got != res.Image {
		t.Errorf("image digest %s, the extracted rootfs scans to %s", res.Image, got)
	}
	if d, err := r.Resolve(res.Name); err != nil || d.Hex() != res.Image {
		t.Errorf("reference %s: %v (%x)", res.Name, err, d)
	}
	mnt := t.TempDir()
	if _, err := Mount(context.Background(), r, res.Name, mnt, mount.Options{Verity: mount.VerityOff}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer mount.Unmount(mnt)
	testutil.CompareTrees(t, want, mnt, testutil.CompareOptions{Hardlinks: true, ComposefsWhiteouts: true})
}

// checkFsck checks that the repository is consistent.
func checkFsck(t *testing.T, r *repo.Repo) {
	t.Helper()
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if !res.OK() {
		t.Errorf("fsck: %+v", res.Problems)
	}
}

func TestPullLayout(t *testing.T) {
	requireRoot(t)
	layers := testLayers()
	img := testImage(t, layers)
	dir := writeLayout(t, img, "v1")
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)

	r := newTestRepo(t)
	if _, err := Pull(context.Background(), r, "oci:"+dir, PullOptions{}); err == nil {
		t.Errorf("pull without a name: no error")
	}
	var reports []Progress
	res, err := Pull(context.Background(), r, "oci:"+dir+":v1", PullOptions{Progress: func(p Progress) { reports = append(reports, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "v1" || len(res.Layers) != 3 {
		t.Errorf("result %+v", res)
	}
	finished := 0
	for _, p := range reports {
		if p.Finished {
			finished++
		}
	}
	if finished != 3 {
		t.Errorf("%d layers reported finished: %+v", finished, reports)
	}
	checkPulled(t, r, res, want)
	checkFsck(t, r)

	// Each layer comes back byte for byte.
	ls, _ := img.Layers()
	for _, l := range ls {
		id, _ := l.DiffID()
		rc, _ := l.Uncompressed()
		orig, _ := io.ReadAll(rc)
		rc.Close()
		var out bytes.Buffer
		if err := WriteLayer(r, id.String(), &out); err != nil || !bytes.Equal(out.Bytes(), orig) {
			t.Errorf("layer %s: %v, %d bytes, want %d", id, err, out.Len(), len(orig))
		}
	}

	// Inspect and Images.
	in, err := Inspect(r, "v1")
	if err != nil {
		t.Fatal(err)
	}
	mdigest, _ := img.Digest()
	if in.ManifestDigest != mdigest.String() || in.Image != res.Image || len(in.Layers) != 3 ||
		in.Config.Labels["test"] != "gocfs" || in.OS != "linux" {
		t.Errorf("inspect: %+v", in)
	}
	infos, err := Images(r)
	if err != nil || len(infos) != 1 || infos[0].Name != "v1" || !infos[0].ImagePresent || infos[0].Image != res.Image {
		t.Errorf("images: %v %+v", err, infos)
	}

	// A second pull reads nothing again, under another name.
	res2, err := Pull(context.Background(), r, "oci:"+dir+":v1", PullOptions{Name: "again/v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res2.Layers {
		if !l.Stored || l.Read != 0 {
			t.Errorf("second pull: layer %+v", l)
		}
	}
	if res2.Image != res.Image {
		t.Errorf("second pull: image %s, first %s", res2.Image, res.Image)
	}

	// The image gone (references removed, garbage collected), mounting
	// builds it again from the layers.
	for _, n := range []string{"v1", "again/v1"} {
		if err := r.Untag(n); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := r.ParseDigest(res.Image)
	os.Remove(r.ImagePath(d))
	if _, err := r.Resolve(res.Image); err == nil {
		t.Fatal("image still there")
	}
	mnt := t.TempDir()
	if _, err := Mount(context.Background(), r, "v1", mnt, mount.Options{Verity: mount.VerityOff}); err != nil {
		t.Fatalf("mount after gc: %v", err)
	}
	testutil.CompareTrees(t, want, mnt, testutil.CompareOptions{Hardlinks: true, ComposefsWhiteouts: true})
	mount.Unmount(mnt)
	if got, err := EnsureImage(context.Background(), r, "v1"); err != nil || got != res.Image {
		t.Fatalf("EnsureImage: %v %s", err, got)
	}
	checkFsck(t, r)
}

func TestPullArchive(t *testing.T) {
	requireRoot(t)
	layers := testLayers()
	img := testImage(t, layers)
	tag, err := name.NewTag("example.org/gocfs/test:v2")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, "docker-archive:"+file, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "example.org/gocfs/test:v2" {
		t.Errorf("name %q", res.Name)
	}
	checkPulled(t, r, res, want)
	checkFsck(t, r)
	// The image named by its tag, which has colons of its own.
	r2 := newTestRepo(t)
	res2, err := Pull(context.Background(), r2, "docker-archive:"+file+":example.org/gocfs/test:v2", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Name != "example.org/gocfs/test:v2" || res2.Image != res.Image {
		t.Errorf("pulled by its tag: name %q, image %s; want %s", res2.Name, res2.Image, res.Image)
	}
}

// TestCanonicalDigest checks the rule on its own, without mounting: the
// same rootfs, from layers or from a directory, is the same image.
func TestCanonicalDigest(t *testing.T) {
	requireRoot(t)
	for name, layers := range map[string][][]member{
		"test layers": testLayers(),
		// No member for the root nor for any directory.
		"implicit":        {{fileM("a/b/c", 0o644, []byte("c")), symlinkM("x/y", "../a")}},
		"hard links only": {{fileM("z", 0o644, randBytes(1, 100)), linkM("a", "z"), linkM("m/b", "z")}},
	} {
		t.Run(name, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "rootfs")
			extract(t, want, layers)
			dir := writeLayout(t, testImage(t, layers), "t")
			r := newTestRepo(t)
			res, err := Pull(context.Background(), r, "oci:"+dir+":t", PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := scanDigest(t, r, want); got != res.Image {
				t.Errorf("image digest %s, the extracted rootfs scans to %s", res.Image, got)
			}
		})
	}
}

func TestRemoveAndGC(t *testing.T) {
	requireRoot(t)
	layersA := testLayers()
	layersB := [][]member{layersA[0], {fileM("b-only", 0o644, randBytes(20, 5000))}}
	r := newTestRepo(t)
	resA, err := Pull(context.Background(), r, "oci:"+writeLayout(t, testImage(t, layersA), "a")+":a", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := Pull(context.Background(), r, "oci:"+writeLayout(t, testImage(t, layersB), "b")+":b", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to collect: everything is named.
	gc, err := r.GC(context.Background(), repo.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gc.ObjectsRemoved != 0 {
		t.Errorf("gc removed %d objects of named images", gc.ObjectsRemoved)
	}
	if err := Remove(r, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve("a"); err == nil {
		t.Errorf("image a still named")
	}
	if infos, _ := Images(r); len(infos) != 1 || infos[0].Name != "b" {
		t.Errorf("images after removing a: %+v", infos)
	}
	if gc, err = r.GC(context.Background(), repo.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	// a's own layer streams, its configuration's and its manifest's.
	if gc.ObjectsRemoved == 0 || len(gc.StreamsPruned) != 4 {
		t.Errorf("gc after removing a: %+v", gc)
	}
	onlyA := fsverity.Sum(textBytes(9, 3000), r.Algorithm())
	if _, err := os.Stat(r.ObjectPath(objectDigest(r.Algorithm(), onlyA))); err == nil {
		t.Errorf("object only image a had is still there")
	}
	if err := WriteLayer(r, resA.Layers[1].DiffID, io.Discard); err == nil {
		t.Errorf("layer only image a had is still there")
	}
	var out bytes.Buffer
	if err := WriteLayer(r, resB.Layers[0].DiffID, &out); err != nil {
		t.Errorf("shared layer: %v", err)
	}
	checkFsck(t, r)
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layersB)
	checkPulled(t, r, resB, want)
}

func TestPullSHA512(t *testing.T) {
	requireRoot(t)
	layers := testLayers()
	img := testImage(t, layers)
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Algorithm: fsverity.SHA512, Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pull(context.Background(), r, "oci:"+writeLayout(t, img, "v1")+":v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Image) != 128 {
		t.Errorf("image digest %s", res.Image)
	}
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	mnt := t.TempDir()
	if _, err := Mount(context.Background(), r, "v1", mnt, mount.Options{Verity: mount.VerityOff}); err != nil {
		t.Fatal(err)
	}
	testutil.CompareTrees(t, want, mnt, testutil.CompareOptions{Hardlinks: true, ComposefsWhiteouts: true})
	mount.Unmount(mnt)
	ls, _ := img.Layers()
	for _, l := range ls {
		id, _ := l.DiffID()
		rc, _ := l.Uncompressed()
		orig, _ := io.ReadAll(rc)
		var out bytes.Buffer
		if err := WriteLayer(r, id.String(), &out); err != nil || !bytes.Equal(out.Bytes(), orig) {
			t.Errorf("layer %s: %v", id, err)
		}
	}
	checkFsck(t, r)
}
