package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// rawMember is a tar member written as it is given: PAX records and all.
type rawMember struct {
	hdr     tar.Header
	content []byte
}

func rawTar(t testing.TB, ms []rawMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := m.hdr
		h.Size = int64(len(m.content))
		if h.ModTime.IsZero() {
			h.ModTime = t0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar %s: %v", h.Name, err)
		}
		if _, err := tw.Write(m.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rDir(name string, mode int64, f ...func(*tar.Header)) rawMember {
	m := rawMember{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
	for _, g := range f {
		g(&m.hdr)
	}
	return m
}

func rFile(name string, content string, f ...func(*tar.Header)) rawMember {
	m := rawMember{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, content: []byte(content)}
	for _, g := range f {
		g(&m.hdr)
	}
	return m
}

func rLink(name, target string, typ byte) rawMember {
	return rawMember{hdr: tar.Header{Name: name, Typeflag: typ, Linkname: target, Mode: 0o600}}
}

func pax(kv ...string) func(*tar.Header) {
	return func(h *tar.Header) {
		h.Format = tar.FormatPAX
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			h.PAXRecords[kv[i]] = kv[i+1]
		}
	}
}

func owner(uid, gid int) func(*tar.Header) {
	return func(h *tar.Header) { h.Uid, h.Gid = uid, gid }
}

func mtime(sec int64, nsec int64) func(*tar.Header) {
	return func(h *tar.Header) { h.ModTime = time.Unix(sec, nsec); h.Format = tar.FormatPAX }
}

// mergeTars imports the tar layers into r and merges them by rules.
func mergeTars(t *testing.T, r *repo.Repo, rules Rules, layers ...[]byte) (*tree.Node, error) {
	t.Helper()
	fs := newRootfs(rules)
	for _, l := range layers {
		objs := r.NewObjectWriter()
		entries, err := newImporter(r.Algorithm(), objs).importTar(bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		if err := objs.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := fs.apply(entries); err != nil {
			return nil, err
		}
	}
	return fs.finish(r.Algorithm())
}

// listing prints a tree one line per name: path, type and mode, owner,
// mtime, xattrs, and a symlink's target or a hard link's first name.
func listing(t *testing.T, root *tree.Node) string {
	t.Helper()
	var lines []string
	err := root.Walk(func(p string, n *tree.Node) error {
		if n.LinkTo != nil {
			tg, err := n.Target()
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s = %s", p, tg.Path()))
			return nil
		}
		var xs []string
		for _, x := range n.Xattrs {
			xs = append(xs, x.Name+"="+string(x.Value))
		}
		sort.Strings(xs)
		l := fmt.Sprintf("%s %o %d:%d %d.%09d [%s]", p, n.Mode, n.UID, n.GID, n.MtimeSec, n.MtimeNsec, strings.Join(xs, " "))
		if n.Mode&tree.ModeType == tree.ModeSymlink {
			l += " -> " + n.Payload
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// composefsRSLayers are two layers whose merge shows each of composefs-rs
// 0.9's rules for an OCI image's root file system; the comments name the
// source file each rule is read from.
func composefsRSLayers(t *testing.T) [][]byte {
	l1 := rawTar(t, []rawMember{
		// The root's own entry is overwritten by /usr's metadata
		// (copy_root_metadata_from_usr, crates/composefs/src/generic_tree.rs).
		rDir("./", 0o700, owner(9, 9), mtime(1600000000, 0)),
		// build_baseimage in crates/composefs-oci/src/image.rs: /bin is a
		// directory, later replaced by a symlink.
		rDir("bin", 0o755),
		rDir("usr", 0o751, owner(5, 6), mtime(1700000123, 456000000),
			pax("SCHILY.xattr.security.capability", "cap", "SCHILY.xattr.user.u", "uu", "SCHILY.xattr.security.selinux", "lbl")),
		rDir("usr/bin", 0o755),
		rFile("usr/bin/busybox", strings.Repeat("b", 100), pax("SCHILY.xattr.user.keep", "k", "SCHILY.xattr.trusted.t", "t", "SCHILY.xattr.security.capability", "c")),
		// A hard link shares its target's inode: its own header's mode
		// is ignored (TarItem::Hardlink, crates/composefs-oci/src/tar.rs).
		rLink("usr/bin/cp", "usr/bin/busybox", tar.TypeLink),
		// A symlink keeps its member's mode (0600 here: st_mode is the
		// header's, crates/composefs-oci/src/tar.rs).
		rLink("bin", "usr/bin", tar.TypeSymlink),
		// The PAX mtime's fraction is the nanoseconds (pax_mtime_nsec,
		// crates/composefs-oci/src/tar.rs); only SCHILY.xattr records are
		// xattrs (tar-core's ParsedEntry.xattrs), libarchive's are not.
		rDir("etc", 0o755),
		rFile("etc/stamp", "s", mtime(1700000000, 123456789), pax("LIBARCHIVE.xattr.user.lib", "bGli", "SCHILY.xattr.user.s", "s")),
		// Members apply in archive order (process_entry,
		// crates/composefs-oci/src/image.rs): a whiteout after the name in
		// the same layer removes it; an opaque marker empties what this
		// layer put in its directory before it, too.
		rFile("etc/gone", "g"),
		rFile("etc/.wh.gone", ""),
		rDir("opq", 0o755),
		rFile("opq/before", "b"),
		rFile("opq/.wh..wh..opq", ""),
		rFile("opq/after", "a"),
		// /run is emptied and gets /usr's mtime (canonicalize_run).
		rDir("run", 0o755, mtime(1500000000, 0)),
		rFile("run/lock", "l"),
	})
	// test_process_entry (crates/composefs-oci/src/image.rs), over the
	// lower layer: .wh.a removes a whole directory, b/.wh..wh..opq empties
	// b, c/.wh.c removes one file.
	l2 := rawTar(t, []rawMember{
		rDir("a", 0o755), rDir("b", 0o755), rDir("c", 0o755),
		rFile("a/b", ""), rFile("a/c", ""), rFile("b/a", ""), rFile("b/c", ""), rFile("c/a", ""), rFile("c/c", ""),
		rFile(".wh.a", ""), rFile("b/.wh..wh..opq", ""), rFile("c/.wh.c", ""),
	})
	return [][]byte{l1, l2}
}

// TestComposefsRSRules checks the tree the layers become against what
// composefs-rs's create_filesystem makes of them (composefsRSLayers says
// where each rule comes from), and that gocfs's earlier rules give another.
func TestComposefsRSRules(t *testing.T) {
	r := newTestRepo(t)
	root, err := mergeTars(t, r, Rules{}, composefsRSLayers(t)...)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"/ 40751 5:6 1700000123.456000000 [security.capability=cap]",
		"/b 40755 0:0 1700000000.000000000 []",
		"/bin 120600 0:0 1700000000.000000000 [] -> usr/bin",
		"/c 40755 0:0 1700000000.000000000 []",
		"/c/a 100644 0:0 1700000000.000000000 []",
		"/etc 40755 0:0 1700000000.000000000 []",
		"/etc/stamp 100644 0:0 1700000000.123456789 []",
		"/opq 40755 0:0 1700000000.000000000 []",
		"/opq/after 100644 0:0 1700000000.000000000 []",
		"/run 40755 0:0 1700000123.456000000 []",
		"/usr 40751 5:6 1700000123.456000000 [security.capability=cap]",
		"/usr/bin 40755 0:0 1700000000.000000000 []",
		"/usr/bin/busybox 100644 0:0 1700000000.000000000 [security.capability=c]",
		"/usr/bin/cp = /usr/bin/busybox",
	}, "\n")
	if got := listing(t, root); got != want {
		t.Errorf("composefs-rs rules:\n%s\nwant\n%s", got, want)
	}
	root, err = mergeTars(t, r, Rules{Xattrs: rootfs.KeepUserXattrs}, composefsRSLayers(t)...)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/": "security.capability=cap user.u=uu", "/usr/bin/busybox": "security.capability=c user.keep=k", "/etc/stamp": "user.s=s"} {
		n := root.LookupPath(p)
		var xs []string
		for _, x := range n.Xattrs {
			xs = append(xs, x.Name+"="+string(x.Value))
		}
		if got := strings.Join(xs, " "); got != want {
			t.Errorf("keep-user-xattrs: %s has %q, want %q", p, got, want)
		}
	}
	legacy, err := mergeTars(t, r, Rules{Legacy: true}, composefsRSLayers(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if listing(t, legacy) == want {
		t.Error("gocfs's earlier rules give composefs-rs's tree: the test shows nothing")
	}
}

// TestComposefsRSRulesNoUsr: a rootfs without /usr, which cfsctl refuses
// (copy_root_metadata_from_usr fails), keeps its root and /run as they
// are in gocfs; its xattrs are filtered all the same.
func TestComposefsRSRulesNoUsr(t *testing.T) {
	r := newTestRepo(t)
	l := rawTar(t, []rawMember{
		rDir("./", 0o700, owner(3, 4), mtime(1600000000, 0)),
		rDir("run", 0o755), rFile("run/x", "x", pax("SCHILY.xattr.user.x", "x", "SCHILY.xattr.security.capability", "c")),
	})
	root, err := mergeTars(t, r, Rules{}, l)
	if err != nil {
		t.Fatal(err)
	}
	want := "/ 40700 3:4 1600000000.000000000 []\n/run 40755 0:0 1700000000.000000000 []\n/run/x 100644 0:0 1700000000.000000000 [security.capability=c]"
	if got := listing(t, root); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestSHA512Metacopy: in a SHA-512 repository, every file of a pulled
// image whose content is an object carries the object's 64-byte SHA-512
// fs-verity digest (overlayfs's 68-byte metacopy, as composefs-rs's
// OverlayMetacopy in crates/composefs/src/erofs/composefs.rs), and it is
// the object's name.
func TestSHA512Metacopy(t *testing.T) {
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
	root, _, err := r.ReadImage(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = root.Walk(func(p string, n *tree.Node) error {
		if n.LinkTo != nil || n.Payload == "" || n.Mode&tree.ModeType != tree.ModeRegular {
			return nil
		}
		files++
		obj, err := digest.ParseObjectPath(n.Payload)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !obj.Equal(fsverity.SHA512, n.Digest) {
			t.Errorf("%s: metacopy digest %x, object %s", p, n.Digest, obj.Hex())
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("%d files: %v", files, err)
	}
	id, err := ComputeID(context.Background(), r, "v1")
	if err != nil || id.Hex() != res.Image {
		t.Errorf("compute-id %s (%v), pulled %s", id.Hex(), err, res.Image)
	}
}

// TestDigestNames: "@DIGEST" names an OCI image by its manifest digest (as
// cfsctl's OciReference::Digest for oci inspect) or its configuration's
// (for oci dump and compute-id, crates/composefs-ctl/src/lib.rs
// resolve_oci_config), tagged or not.
func TestDigestNames(t *testing.T) {
	requireRoot(t)
	img := testImage(t, testLayers())
	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, "oci:"+writeLayout(t, img, "v1")+":v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	if err := Untag(r, "v1"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"@" + res.ManifestDigest, "@" + cfg.String()} {
		in, err := Inspect(r, name)
		if err != nil || in.ManifestDigest != res.ManifestDigest {
			t.Errorf("inspect %s: %v", name, err)
			continue
		}
		if id, err := ComputeID(context.Background(), r, name); err != nil || id.Hex() != res.Image {
			t.Errorf("compute-id %s: %s, %v; pulled %s", name, id.Hex(), err, res.Image)
		}
	}
	for _, name := range []string{"@sha256:" + strings.Repeat("0", 64), "@nonsense"} {
		if _, err := Inspect(r, name); err == nil {
			t.Errorf("inspect %s: no error", name)
		}
	}
}
