package verify_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/assets"
	"github.com/gocfs/gocfs/verify"
)

var le = binary.LittleEndian

const goldenDir = "../image/testdata/read"

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func check(t testing.TB, b []byte, opts verify.Options) *verify.Report {
	t.Helper()
	r, err := verify.Image(bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func problems(r *verify.Report) string {
	var s []string
	for _, p := range r.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}

// TestVerifyGolden checks that upstream-made images pass.
func TestVerifyGolden(t *testing.T) {
	imgs, _ := filepath.Glob(goldenDir + "/*.img")
	if len(imgs) < 10 {
		t.Fatal("golden images missing")
	}
	for _, p := range imgs {
		r := check(t, readFile(t, p), verify.Options{})
		if strings.HasSuffix(p, "redirect-odd.img") {
			// Its redirects ("/abc") name no digest.
			if len(r.Problems) != 2 || r.Problems[0].What != "redirect" {
				t.Errorf("%s: %s", p, problems(r))
			}
			continue
		}
		if !r.OK || !r.Composefs {
			t.Errorf("%s: %s", p, problems(r))
		}
	}
}

// TestVerifyOurWriter checks that images our writer makes from the
// reference dumps pass.
func TestVerifyOurWriter(t *testing.T) {
	dir := assets.Dir(t)
	dumps, _ := filepath.Glob(dir + "/*.dump")
	gz, _ := filepath.Glob(dir + "/*.dump.gz")
	if !testing.Short() {
		dumps = append(dumps, gz...)
	}
	if len(dumps) < 20 {
		t.Fatalf("only %d reference dumps in %s", len(dumps), dir)
	}
	dumps = append(dumps, goldenDir+"/mixed.dump", goldenDir+"/hardlinks.dump")
	for _, p := range dumps {
		if strings.Contains(p, "should-fail") {
			continue
		}
		for _, v := range []int{0, 1} {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			var r io.Reader = f
			if strings.HasSuffix(p, ".gz") {
				if r, err = gzip.NewReader(f); err != nil {
					t.Fatal(err)
				}
			}
			root, err := dump.Parse(r, dump.Options{})
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			var b bytes.Buffer
			if err := image.Write(&b, root, image.Options{MinVersion: v, MaxVersion: v}); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if r := check(t, b.Bytes(), verify.Options{}); !r.OK {
				t.Errorf("%s v%d: %s", p, v, problems(r))
			}
		}
	}
}

// TestVerifyPlainEROFS: mkfs.erofs images are not composefs images, but
// the rest of their structure checks out (except chunk deduplication).
func TestVerifyPlainEROFS(t *testing.T) {
	for _, name := range []string{"mkfs-default", "mkfs-noinline"} {
		r := check(t, readFile(t, "../erofs/testdata/"+name+".img"), verify.Options{})
		if len(r.Problems) != 1 || r.Problems[0].What != "header" || r.Composefs {
			t.Errorf("%s: %s", name, problems(r))
		}
		if r.Stats.Inodes != 315 || r.Stats.HardLinks != 1 {
			t.Errorf("%s: stats %+v", name, r.Stats)
		}
	}
	r := check(t, readFile(t, "../erofs/testdata/mkfs-chunked.img"), verify.Options{})
	for _, p := range r.Problems[1:] {
		if p.What != "overlap" {
			t.Errorf("chunked: %s", p)
		}
	}
}

// layout locates structures of an image for targeted corruptions.
type layout struct {
	img     *erofs.Image
	inodes  map[string]*erofs.Inode // by path
	dirents map[string]int64        // image offset of the dirent naming path
}

func locate(t testing.TB, b []byte) *layout {
	t.Helper()
	img, err := erofs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	l := &layout{img: img, inodes: map[string]*erofs.Inode{}, dirents: map[string]int64{}}
	var walk func(p string, nid uint64)
	walk = func(p string, nid uint64) {
		in, err := img.Inode(nid)
		if err != nil {
			t.Fatal(err)
		}
		if _, seen := l.inodes[p]; seen {
			return
		}
		l.inodes[p] = in
		if !in.IsDir() {
			return
		}
		exts, err := in.Extents()
		if err != nil {
			t.Fatal(err)
		}
		var kids []erofs.DirEntry
		err = in.ReadDirBlocks(func(off int64, ents []erofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			for i, e := range ents {
				cp := strings.TrimSuffix(p, "/") + "/" + e.Name
				for _, x := range exts {
					if off >= x.Logical && off < x.Logical+x.Length {
						l.dirents[cp] = x.Physical + off - x.Logical + int64(i)*erofs.DirentSize
					}
				}
				if e.Name != "." && e.Name != ".." {
					kids = append(kids, e)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range kids {
			walk(strings.TrimSuffix(p, "/")+"/"+e.Name, e.Nid)
		}
	}
	walk("/", img.RootNid())
	return l
}

// setSize sets the i_size of an inode.
func setSize(b []byte, in *erofs.Inode, size uint64) {
	if in.Extended {
		le.PutUint64(b[in.Offset+8:], size)
	} else {
		le.PutUint32(b[in.Offset+8:], uint32(size))
	}
}

// xattrValue returns the image offset of the value of the named inline
// xattr of in.
func xattrValue(t testing.TB, in *erofs.Inode, name string) int64 {
	t.Helper()
	xs, err := in.InlineXattrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.FullName() == name {
			return x.Offset + erofs.XattrEntrySize + int64(len(x.Name))
		}
	}
	t.Fatalf("no inline %s", name)
	return 0
}

func TestVerifyCorruptions(t *testing.T) {
	mixed := readFile(t, goldenDir+"/mixed.img")
	cases := []struct {
		name, what, path string
		base             []byte
		corrupt          func(t *testing.T, b []byte, l *layout)
	}{
		{"header flags", "header", "", mixed, func(t *testing.T, b []byte, l *layout) { b[8] |= 0x10 }},
		{"composefs version", "header", "", mixed, func(t *testing.T, b []byte, l *layout) { b[12] = 9 }},
		{"block count", "superblock", "", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint32(b[erofs.SuperOffset+36:], 1000)
		}},
		{"compat feature", "feature", "", mixed, func(t *testing.T, b []byte, l *layout) {
			b[erofs.SuperOffset+11] |= 0x80
		}},
		{"no ACL flag", "header", "", mixed, func(t *testing.T, b []byte, l *layout) { b[8] &^= 1 }},
		{"dirent order", "order", "/c0", mixed, func(t *testing.T, b []byte, l *layout) {
			// Rename /blk to /zlk: now out of order.
			off := l.dirents["/blk"]
			nameoff := le.Uint16(b[off+8:])
			blockStart := direntBlockStart(l, "/blk")
			b[blockStart+int64(nameoff)] = 'z'
		}},
		{"file type", "filetype", "/chr", mixed, func(t *testing.T, b []byte, l *layout) {
			b[l.dirents["/chr"]+10] = erofs.FTRegFile
		}},
		{"dot", "dirent", "/sub", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint64(b[l.dirents["/sub/."]:], l.inodes["/big"].Nid)
		}},
		{"dir hard link", "hardlink", "/sub/zz", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint64(b[l.dirents["/sub/zz"]:], l.inodes["/sub"].Nid)
		}},
		{"special size", "size", "/fifo", mixed, func(t *testing.T, b []byte, l *layout) {
			setSize(b, l.inodes["/fifo"], 12)
		}},
		{"symlink size", "symlink", "/l1", mixed, func(t *testing.T, b []byte, l *layout) {
			setSize(b, l.inodes["/l1"], 0)
		}},
		{"redirect escape", "redirect", "/big", mixed, func(t *testing.T, b []byte, l *layout) {
			copy(b[xattrValue(t, l.inodes["/big"], "trusted.overlay.redirect"):], "/../../etc/passwd")
		}},
		{"redirect digest", "redirect", "/big", mixed, func(t *testing.T, b []byte, l *layout) {
			b[xattrValue(t, l.inodes["/big"], "trusted.overlay.redirect")+5] ^= 1
		}},
		{"metacopy header", "metacopy", "/big", mixed, func(t *testing.T, b []byte, l *layout) {
			b[xattrValue(t, l.inodes["/big"], "trusted.overlay.metacopy")+3] = 2
		}},
		{"overlay xattr", "xattr", "/esc", mixed, func(t *testing.T, b []byte, l *layout) {
			// trusted.overlay.overlay.custom -> trusted.overlay.XXXXXXX.custom
			off := xattrValue(t, l.inodes["/esc"], "trusted.overlay.overlay.custom") - int64(len("overlay.overlay.custom"))
			copy(b[off+8:], "XXXXXXX")
		}},
		{"xattr filter", "xattr", "/esc", mixed, func(t *testing.T, b []byte, l *layout) {
			off, _ := l.inodes["/esc"].XattrArea()
			le.PutUint32(b[off:], 0xffffffff)
		}},
		{"xattr icount 1", "xattr", "/esc", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint16(b[l.inodes["/esc"].Offset+2:], 1)
		}},
		{"data overlap", "overlap", "/sub", mixed, func(t *testing.T, b []byte, l *layout) {
			// Point /sub's directory blocks at /inline5000's data block.
			le.PutUint32(b[l.inodes["/sub"].Offset+16:], l.inodes["/inline5000"].RawBlkAddr)
		}},
		{"data in metadata", "extent", "/inline5000", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint32(b[l.inodes["/inline5000"].Offset+16:], 0)
		}},
		{"inode overlap", "overlap", "", mixed, func(t *testing.T, b []byte, l *layout) {
			// Grow /chr's xattr area over the next inode.
			le.PutUint16(b[l.inodes["/chr"].Offset+2:], 10)
		}},
		{"bad nid", "inode", "/fifo", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint64(b[l.dirents["/fifo"]:], 1<<40)
		}},
		{"bad mode", "mode", "/fifo", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint16(b[l.inodes["/fifo"].Offset+4:], 0o170644)
		}},
		{"compressed layout", "layout", "/inline1", mixed, func(t *testing.T, b []byte, l *layout) {
			le.PutUint16(b[l.inodes["/inline1"].Offset:], le.Uint16(b[l.inodes["/inline1"].Offset:])&^0xe|erofs.LayoutCompressedFull<<1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(c.base)
			c.corrupt(t, b, locate(t, c.base))
			r := check(t, b, verify.Options{})
			found := false
			for _, p := range r.Problems {
				if p.What == c.what && (c.path == "" || p.Path == c.path) {
					found = true
				}
			}
			if !found || r.OK {
				t.Errorf("want a %q problem at %q, got:\n%s", c.what, c.path, problems(r))
			}
		})
	}
}

// direntBlockStart returns the image offset of the directory block (or
// inline tail) holding the dirent of path.
func direntBlockStart(l *layout, path string) int64 {
	dir := l.inodes["/"]
	exts, _ := dir.Extents()
	off := l.dirents[path]
	for _, x := range exts {
		if off >= x.Physical && off < x.Physical+x.Length {
			return x.Physical + (off-x.Physical)/erofs.BlockSize*erofs.BlockSize
		}
	}
	return -1
}

// TestVerifyObjects checks the object store checks.
func TestVerifyObjects(t *testing.T) {
	base := t.TempDir()
	var lines []string
	lines = append(lines, "/ 4096 40755 2 0 0 0 0.0 - - -")
	contents := map[string][]byte{}
	for i, n := range []int{1, 4096, 70000} {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		d := fsverity.Sum(data, fsverity.SHA256)
		h := fsverity.Hex(d)
		obj := h[:2] + "/" + h[2:]
		contents[obj] = data
		if err := os.MkdirAll(filepath.Join(base, h[:2]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, obj), data, 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("/f%d %d 100644 1 0 0 0 0.0 %s - %s", i, n, obj, h))
	}
	lines = append(lines, "/nodigest 5 100644 1 0 0 0 0.0 00/00000000000000000000000000000000000000000000000000000000000000 - -")
	root, err := dump.Parse(strings.NewReader(strings.Join(lines, "\n")+"\n"), dump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := image.Write(&buf, root, image.DefaultOptions); err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	// The object without digest is missing.
	r := check(t, img, verify.Options{Basedir: base})
	if len(r.Problems) != 1 || r.Problems[0].What != "object" || r.Problems[0].Path != "/nodigest" {
		t.Errorf("missing object: %s", problems(r))
	}
	if r.Stats.Objects != 4 || r.Stats.Checked != 4 {
		t.Errorf("stats %+v", r.Stats)
	}
	zero := filepath.Join(base, "00", strings.Repeat("0", 62))
	os.MkdirAll(filepath.Dir(zero), 0o755)
	os.WriteFile(zero, []byte("12345"), 0o644)
	if r := check(t, img, verify.Options{Basedir: base}); !r.OK || r.Stats.Unverified != 1 {
		t.Errorf("clean store: %s %+v", problems(r), r.Stats)
	}
	// Wrong content, same size.
	for obj, data := range contents {
		bad := bytes.Clone(data)
		bad[len(bad)-1] ^= 1
		os.WriteFile(filepath.Join(base, obj), bad, 0o644)
		r := check(t, img, verify.Options{Basedir: base})
		if len(r.Problems) != 1 || r.Problems[0].What != "digest" {
			t.Errorf("bad content of %s: %s", obj, problems(r))
		}
		os.WriteFile(filepath.Join(base, obj), data[1:], 0o644)
		r = check(t, img, verify.Options{Basedir: base})
		if len(r.Problems) != 1 || r.Problems[0].What != "object" {
			t.Errorf("bad size of %s: %s", obj, problems(r))
		}
		os.WriteFile(filepath.Join(base, obj), data, 0o644)
	}
	// The image digest.
	d := fsverity.Sum(img, fsverity.SHA256)
	if r := check(t, img, verify.Options{Basedir: base, Digest: d}); !r.OK {
		t.Errorf("digest: %s", problems(r))
	}
	d[0] ^= 1
	if r := check(t, img, verify.Options{Digest: d}); r.OK || r.Problems[0].What != "digest" {
		t.Errorf("wrong digest: %s", problems(r))
	}
	p := filepath.Join(t.TempDir(), "img")
	os.WriteFile(p, img, 0o644)
	if r, err := verify.File(p, verify.Options{Digest: d}); err != nil || r.OK || r.Image != p {
		t.Errorf("File: %+v %v", r, err)
	}
}

func TestReportJSON(t *testing.T) {
	b := readFile(t, goldenDir+"/redirect-odd.img")
	r := check(t, b, verify.Options{})
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	ps := back["problems"].([]any)
	if back["ok"] != false || len(ps) != 2 || ps[0].(map[string]any)["path"] != "/f" || ps[0].(map[string]any)["nid"] == nil {
		t.Errorf("%s", j)
	}
}

func TestMaxProblems(t *testing.T) {
	b := bytes.Clone(readFile(t, goldenDir+"/mixed.img"))
	l := locate(t, b)
	for p, off := range l.dirents {
		if strings.HasPrefix(p, "/sub/f") {
			b[off+10] = erofs.FTSymlink
		}
	}
	r := check(t, b, verify.Options{MaxProblems: 10})
	if len(r.Problems) != 10 || r.Omitted != 390 || r.OK {
		t.Errorf("%d problems, %d omitted", len(r.Problems), r.Omitted)
	}
}
