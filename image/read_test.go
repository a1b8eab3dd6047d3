package image_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/assets"
	"github.com/gocfs/gocfs/tree"
)

// Upstream tools, used when present (they are not in CI).
const rdUpstreamBin = "/opt/upstream-cfs/bin"

// rdAssets returns upstream's reference assets directory (the
// repository's own checked copy, or $GOCFS_ASSETS).
func rdAssets(t testing.TB) string { return assets.Dir(t) }

func rdUpstream(t testing.TB, tool string) string {
	t.Helper()
	p := filepath.Join(rdUpstreamBin, tool)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("upstream %s not installed in %s", tool, rdUpstreamBin)
	}
	return p
}

// rdGoldens returns the golden images of testdata/read.
func rdGoldens(t testing.TB) []string {
	t.Helper()
	imgs, err := filepath.Glob("testdata/read/*.img")
	if err != nil || len(imgs) < 10 {
		t.Fatalf("golden images missing: %v %v", imgs, err)
	}
	return imgs
}

func rdDump(t testing.TB, root *tree.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := dump.NewWriter(&b).WriteTree(root); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func rdWrite(t testing.TB, root *tree.Node, version int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := image.Write(&b, root, image.Options{MinVersion: version, MaxVersion: version}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func rdRead(t testing.TB, img []byte, opts image.ReadOptions) *tree.Node {
	t.Helper()
	root, err := image.Read(bytes.NewReader(img), int64(len(img)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// firstDiff describes where two outputs start to differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, g[i], w[i])
		}
	}
	return "different lengths"
}

// TestReadGolden reads upstream-made images and checks the tree prints as
// upstream's composefs-info dump printed it.
func TestReadGolden(t *testing.T) {
	for _, p := range rdGoldens(t) {
		name := strings.TrimSuffix(filepath.Base(p), ".img")
		t.Run(name, func(t *testing.T) {
			root, err := image.ReadFile(p, image.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(p, ".img") + ".dump.out")
			if err != nil {
				t.Fatal(err)
			}
			if got := rdDump(t, root); !bytes.Equal(got, want) {
				t.Errorf("dump differs from upstream's: %s", firstDiff(got, want))
			}
		})
	}
}

// TestReadRoundTrip reads each golden image and writes it again with its
// own version: the bytes must not change.
func TestReadRoundTrip(t *testing.T) {
	for _, p := range rdGoldens(t) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			v, err := image.ReadVersion(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			root := rdRead(t, data, image.ReadOptions{})
			if got := rdWrite(t, root, v); !bytes.Equal(got, data) {
				t.Errorf("rewritten image differs (%d bytes, want %d)", len(got), len(data))
			}
		})
	}
}

// TestReadAssetsOurWriter builds every reference dump with our writer and
// checks that reading the image back and writing it again is exact, and
// that the tree read back prints as upstream's composefs-info prints the
// same image (when upstream is installed).
func TestReadAssetsOurWriter(t *testing.T) {
	dumps, _ := filepath.Glob(filepath.Join(rdAssets(t), "*.dump*"))
	n := 0
	for _, p := range dumps {
		base := filepath.Base(p)
		if strings.HasPrefix(base, "should-fail") || !(strings.HasSuffix(p, ".dump") || strings.HasSuffix(p, ".dump.gz")) {
			continue
		}
		if testing.Short() && strings.HasSuffix(p, ".gz") {
			continue
		}
		t.Run(base, func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var r io.Reader = f
			if strings.HasSuffix(p, ".gz") {
				if r, err = gzip.NewReader(f); err != nil {
					t.Fatal(err)
				}
			}
			strict := base != "no-newline.dump" && base != "longlink.dump" && base != "honggfuzz-longlink-unterminated.dump"
			src, err := dump.Parse(r, dump.Options{Strict: strict})
			if err != nil {
				t.Fatal(err)
			}
			opts := image.DefaultOptions
			if b, err := os.ReadFile(strings.TrimSuffix(p, ".gz") + ".version"); err == nil {
				v := int(b[0] - '0')
				opts = image.Options{MinVersion: v, MaxVersion: v}
			}
			var buf bytes.Buffer
			if err := image.Write(&buf, src, opts); err != nil {
				t.Fatal(err)
			}
			img := buf.Bytes()
			v, err := image.ReadVersion(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			root := rdRead(t, img, image.ReadOptions{})
			if again := rdWrite(t, root, v); !bytes.Equal(again, img) {
				t.Errorf("image -> tree -> image is not exact")
			}
			if _, err := os.Stat(filepath.Join(rdUpstreamBin, "composefs-info")); err != nil {
				return
			}
			tmp := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(tmp, img, 0o644); err != nil {
				t.Fatal(err)
			}
			want, err := exec.Command(filepath.Join(rdUpstreamBin, "composefs-info"), "dump", tmp).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := rdDump(t, root); !bytes.Equal(got, want) {
				t.Errorf("dump differs from upstream's: %s", firstDiff(got, want))
			}
		})
		n++
	}
	if n < 10 {
		t.Errorf("only %d assets checked", n)
	}
}

// TestReadUpstreamCompare builds each golden dump with upstream
// mkcomposefs and compares our reading with upstream composefs-info, also
// with --filter.
func TestReadUpstreamCompare(t *testing.T) {
	mk := rdUpstream(t, "mkcomposefs")
	info := rdUpstream(t, "composefs-info")
	dir := t.TempDir()
	img := filepath.Join(dir, "mixed.img")
	if out, err := exec.Command(mk, "--from-file", "testdata/read/mixed.dump", img).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, filter := range [][]string{nil, {"sub"}, {"big2", "sub", "nonexistent"}, {"hl"}, {}} {
		args := []string{"dump"}
		for _, f := range filter {
			args = append([]string{"--filter=" + f}, args...)
		}
		want, err := exec.Command(info, append(args, img)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		opts := image.ReadOptions{Filter: filter}
		if len(filter) == 0 {
			opts.Filter = nil // composefs-info has no way to pass an empty filter
		}
		root, err := image.ReadFile(img, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := rdDump(t, root); !bytes.Equal(got, want) {
			t.Errorf("filter %q: dump differs from upstream's: %s", filter, firstDiff(got, want))
		}
	}
}

func TestReadFilter(t *testing.T) {
	root, err := image.ReadFile("testdata/read/hardlinks.img", image.ReadOptions{Filter: []string{"b", "z", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "/ 4096 40755 3 0 0 0 1.0 - - -\n" +
		"/b 5 100644 3 0 0 0 1.0 - hello -\n" +
		"/c 3 120777 2 0 0 0 1.0 a/x - -\n" +
		"/z 5 @100644 3 0 0 0 1.0 /b hello -\n"
	if got := string(rdDump(t, root)); got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
	root, err = image.ReadFile("testdata/read/hardlinks.img", image.ReadOptions{Filter: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Children) != 0 {
		t.Errorf("empty filter kept %d entries", len(root.Children))
	}
}

func TestReadHardlinks(t *testing.T) {
	root, err := image.ReadFile("testdata/read/hardlinks.img", image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := root.LookupPath("a/x")
	for _, p := range []string{"b", "z"} {
		if n := root.LookupPath(p); n == nil || n.LinkTo != x {
			t.Errorf("%s is not a hard link to /a/x: %+v", p, n)
		}
	}
	if x.Nlink != 3 {
		t.Errorf("link count %d, want 3 as stored", x.Nlink)
	}
	if d := root.LookupPath("d"); d == nil || d.LinkTo != root.LookupPath("c") {
		t.Errorf("d is not a hard link to /c")
	}
}

func TestReadVersion(t *testing.T) {
	for name, want := range map[string]int{"special": 0, "special_v1": 1, "mixed": 1, "mixed_v1": 1, "bigfile": 0} {
		f, err := os.Open("testdata/read/" + name + ".img")
		if err != nil {
			t.Fatal(err)
		}
		v, err := image.ReadVersion(f)
		f.Close()
		if err != nil || v != want {
			t.Errorf("%s: version %d, %v; want %d", name, v, err, want)
		}
	}
	if _, err := image.ReadVersion(bytes.NewReader([]byte("short"))); !errors.Is(err, image.ErrNotComposefs) {
		t.Errorf("short file: %v", err)
	}
}

// rdPatch returns a copy of the golden image name with fn applied.
func rdPatch(t *testing.T, name string, fn func(b []byte)) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/read/" + name + ".img")
	if err != nil {
		t.Fatal(err)
	}
	fn(b)
	return b
}

// rdFindInode returns the offset and nid of the inode the root's entry
// name points to.
func rdFindInode(t *testing.T, b []byte, name string) (off int64, nid uint64) {
	t.Helper()
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.Inode(img.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := root.Lookup(name)
	if err != nil || !ok {
		t.Fatalf("no %s in root: %v", name, err)
	}
	in, err := img.Inode(e.Nid)
	if err != nil {
		t.Fatal(err)
	}
	return in.Offset, e.Nid
}

// rdFindDirent returns the image offset of the root's dirent called name.
func rdFindDirent(t *testing.T, b []byte, name string) int64 {
	t.Helper()
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.Inode(img.RootNid())
	if err != nil {
		t.Fatal(err)
	}
	exts, err := root.Extents()
	if err != nil {
		t.Fatal(err)
	}
	found := int64(-1)
	err = root.ReadDirBlocks(func(off int64, ents []erofs.DirEntry, err error) error {
		for i, e := range ents {
			if e.Name != name {
				continue
			}
			for _, x := range exts {
				if off >= x.Logical && off < x.Logical+x.Length {
					found = x.Physical + off - x.Logical + int64(i)*erofs.DirentSize
				}
			}
		}
		return err
	})
	if err != nil || found < 0 {
		t.Fatalf("dirent %s not found: %v", name, err)
	}
	return found
}

// rdSetNlink sets the link count of the inode at off.
func rdSetNlink(b []byte, off int64, n uint32) {
	le := binary.LittleEndian
	if le.Uint16(b[off:])&erofs.InodeFormatVersionMask == erofs.InodeLayoutExtended {
		le.PutUint32(b[off+44:], n)
	} else {
		le.PutUint16(b[off+6:], uint16(n))
	}
}

func TestReadErrors(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name string
		img  func(t *testing.T) []byte
		want error
	}{
		{"empty", func(*testing.T) []byte { return nil }, image.ErrNotComposefs},
		{"bad magic", func(t *testing.T) []byte {
			return rdPatch(t, "special", func(b []byte) { b[0] ^= 1 })
		}, image.ErrNotComposefs},
		{"header version", func(t *testing.T) []byte {
			return rdPatch(t, "special", func(b []byte) { le.PutUint32(b[4:], 2) })
		}, image.ErrHeaderVersion},
		{"erofs magic", func(t *testing.T) []byte {
			return rdPatch(t, "special", func(b []byte) { b[erofs.SuperOffset] ^= 1 })
		}, erofs.ErrNotEROFS},
		{"compression feature", func(t *testing.T) []byte {
			return rdPatch(t, "special", func(b []byte) { b[erofs.SuperOffset+80] |= erofs.FeatureIncompatComprCfgs })
		}, erofs.ErrCompressed},
		{"unknown feature", func(t *testing.T) []byte {
			return rdPatch(t, "special", func(b []byte) { b[erofs.SuperOffset+83] |= 0x80 })
		}, erofs.ErrUnsupported},
		{"hard-linked whiteout", func(t *testing.T) []byte {
			b := rdPatch(t, "special", nil2)
			off, _ := rdFindInode(t, b, "00")
			rdSetNlink(b, off, 2)
			return b
		}, image.ErrWhiteoutLink},
		{"directory cycle", func(t *testing.T) []byte {
			b := rdPatch(t, "mixed", nil2)
			// Point the root's entry "sub" at the root itself.
			img, _ := erofs.Open(bytes.NewReader(b), int64(len(b)))
			le.PutUint64(b[rdFindDirent(t, b, "sub"):], img.RootNid())
			return b
		}, image.ErrDirLink},
		{"flat file too large", func(t *testing.T) []byte {
			b := rdPatch(t, "mixed", nil2)
			off, _ := rdFindInode(t, b, "inline5000")
			// Extended or compact: both have i_size at offset 8 (le32 low).
			le.PutUint32(b[off+8:], 5001)
			return b
		}, image.ErrFileLayout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.img(t)
			_, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{})
			if !errors.Is(err, c.want) || !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("got %v, want %v (and fs.ErrInvalid)", err, c.want)
			}
		})
	}
}

func nil2([]byte) {}

// TestReadPlainEROFS checks that a plain EROFS image is refused.
func TestReadPlainEROFS(t *testing.T) {
	b, err := os.ReadFile("../erofs/testdata/mkfs-default.img")
	if err != nil {
		t.Skip(err)
	}
	if _, err := image.Read(bytes.NewReader(b), int64(len(b)), image.ReadOptions{}); !errors.Is(err, image.ErrNotComposefs) {
		t.Errorf("got %v", err)
	}
}
