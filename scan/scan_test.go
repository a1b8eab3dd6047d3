package scan_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/sample"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the full sample tree needs root (devices, trusted xattrs, owners)")
	}
}

func sampleDir(t *testing.T) string {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "src")
	if err := sample.Create(dir, sample.Full); err != nil {
		t.Fatal(err)
	}
	return dir
}

func imageSum(t *testing.T, root *tree.Node, opts image.Options) string {
	t.Helper()
	var buf bytes.Buffer
	if err := image.Write(&buf, root, opts); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(s[:])
}

// The sha256 of the image upstream mkcomposefs 1.0.8 writes for the sample
// tree, with the given flags (recorded with upstream's tool).
var sampleGolden = []struct {
	flags string
	opts  scan.Options
	img   image.Options
	sum   string
}{
	{"", scan.Options{}, image.DefaultOptions, "2409dc30e9fa0ac2198ba63da865dd934448518d8e3a8a9254832044cb3abc32"},
	{"--use-epoch", scan.Options{UseEpoch: true}, image.DefaultOptions, "f377aebccd6f6517932f78b7ce6b72786ee9509b92eb6e404cce24872fee565d"},
	{"--skip-xattrs", scan.Options{SkipXattrs: true}, image.DefaultOptions, "5dfb6f660d29867e5cd7c1ded96e415aaaaeb11500b84f14b67aa44cfbbe9189"},
	{"--user-xattrs", scan.Options{UserXattrsOnly: true}, image.DefaultOptions, "d200a755135de34ac657bf727b9bececd05797536be5568e69b89b38a9887e9c"},
	{"--skip-devices", scan.Options{SkipDevices: true}, image.DefaultOptions, "2386b1570a6194aec5a0dca7e5c162c0e5bb91a0455807028652b127f81cb230"},
	{"--max-version=0", scan.Options{}, image.Options{}, "11b453b393b593e33f0ee2f725ce01a82efbe09e3a52c6548d103c8898ab18e8"},
}

func TestSampleMatchesUpstream(t *testing.T) {
	dir := sampleDir(t)
	for _, g := range sampleGolden {
		t.Run(g.flags, func(t *testing.T) {
			for _, threads := range []int{1, 4} {
				o := g.opts
				o.Threads = threads
				root, err := scan.Dir(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				if got := imageSum(t, root, g.img); got != g.sum {
					t.Fatalf("threads=%d: image sha256 %s, want upstream's %s", threads, got, g.sum)
				}
			}
		})
	}
}

func TestScanContents(t *testing.T) {
	dir := sampleDir(t)
	root, err := scan.Dir(dir, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	small := root.LookupPath("files/size-64")
	if small == nil || string(small.Content) != string(sample.Content("files/size-64", 64)) {
		t.Fatalf("64-byte file not inlined: %+v", small)
	}
	big := root.LookupPath("files/size-65")
	if big == nil || big.Content != nil || len(big.Digest) != 32 || big.Payload[2] != '/' {
		t.Fatalf("65-byte file should be stored by digest: %+v", big)
	}
	// Hard links become separate files by default, as upstream does.
	a, b := root.LookupPath("files/hardlink-target"), root.LookupPath("files/hardlink-second")
	if a.LinkTo != nil || b.LinkTo != nil || a.Nlink != 1 || b.Nlink != 1 {
		t.Fatalf("hard links kept without PreserveHardlinks: %+v %+v", a, b)
	}
	if wh := root.LookupPath("overlay/whiteout"); wh == nil || !wh.IsWhiteout() {
		t.Fatal("whiteout not read as char 0/0")
	}
	if l := root.LookupPath("links/max"); l == nil || len(l.Payload) != 4095 {
		t.Fatal("4095-byte symlink target not read")
	}

	root, err = scan.Dir(dir, scan.Options{PreserveHardlinks: true})
	if err != nil {
		t.Fatal(err)
	}
	// The first name in path order ("…-second") holds the inode.
	a, b = root.LookupPath("files/hardlink-second"), root.LookupPath("files/hardlink-target")
	if a.LinkTo != nil || b.LinkTo != a || a.Nlink != 2 {
		t.Fatalf("PreserveHardlinks: target %+v, link %+v", a, b)
	}
}

func TestScanErrors(t *testing.T) {
	_, err := scan.Dir(filepath.Join(t.TempDir(), "missing"), scan.Options{})
	var se *scan.Error
	if err == nil || !errorsAs(err, &se) {
		t.Fatalf("missing source: %v", err)
	}
	// A symlink with an empty target can't exist, but a file vanishing
	// mid-scan is reported with its path.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := scan.Dir(dir, scan.Options{SkipXattrs: true, UserXattrsOnly: true}); err == nil {
		t.Fatal("conflicting options accepted")
	}
}

// TestUpstreamDirectories compares with upstream's mkcomposefs on real
// directories when its binary is at hand (never in CI).
func TestUpstreamDirectories(t *testing.T) {
	bin := upstreamMkcomposefs(t)
	for _, dir := range []string{"/etc", "/usr/share/doc", "/usr/include"} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		t.Run(dir, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "u.img")
			if msg, err := exec.Command(bin, dir, out).CombinedOutput(); err != nil {
				t.Skipf("upstream mkcomposefs failed on %s: %v %s", dir, err, msg)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			root, err := scan.Dir(dir, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(want)
			if got := imageSum(t, root, image.DefaultOptions); got != hex.EncodeToString(s[:]) {
				t.Fatalf("image of %s differs from upstream's", dir)
			}
		})
	}
}

func upstreamMkcomposefs(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("GOCFS_UPSTREAM_BIN"), "/opt/upstream-cfs/bin"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "mkcomposefs")); err == nil {
			return filepath.Join(p, "mkcomposefs")
		}
	}
	t.Skip("skipping: upstream mkcomposefs not available (set GOCFS_UPSTREAM_BIN to compare by hand)")
	return ""
}

// TestSampleStoreMatchesUpstream checks --digest-store's set of objects for
// the sample tree against the list upstream's mkcomposefs wrote (208
// objects; the sha256 of their sorted relative paths, one per line).
// Stored after the scan (ImportTree) or as it reads (Options.Store, as
// mkcomposefs does), the objects are the same, and so is the tree.
func TestSampleStoreMatchesUpstream(t *testing.T) {
	dir := sampleDir(t)
	root, err := scan.Dir(dir, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, during := range []bool{false, true} {
		objects := filepath.Join(t.TempDir(), "objects")
		st, err := store.Open(objects, store.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		if during {
			w := st.NewWriter(nil)
			root2, err := scan.Dir(dir, scan.Options{Store: func(f *os.File, size int64) (digest.Digest, error) {
				d, _, err := w.PutFile(f, digest.Digest{}, size)
				return d, err
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			d1, _ := image.Digest(root, image.DefaultOptions)
			d2, _ := image.Digest(root2, image.DefaultOptions)
			if !bytes.Equal(d1, d2) {
				t.Errorf("storing while scanning changed the image: %x, not %x", d2, d1)
			}
		} else if err := st.ImportTree(context.Background(), root, dir, 2); err != nil {
			t.Fatal(err)
		}
		checkUpstreamObjects(t, objects)
	}
}

func checkUpstreamObjects(t *testing.T, objects string) {
	t.Helper()
	var list []string
	err := filepath.Walk(objects, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(objects, p)
			list = append(list, rel)
			// Content is what its name says.
			d, err := fsverity.DigestFile(p, fsverity.SHA256)
			if err != nil {
				return err
			}
			if digest.MustNew(fsverity.SHA256, d).ObjectPath() != rel {
				t.Errorf("object %s holds content with digest %x", rel, d)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(list)
	sum := sha256.Sum256([]byte(strings.Join(list, "\n") + "\n"))
	if len(list) != 208 || hex.EncodeToString(sum[:]) != "8bd9baf941a22ab830a47b2412905a90ba05444a095e78c79fd942766096f035" {
		t.Fatalf("%d objects, list sha256 %x; want upstream's 208 objects", len(list), sum)
	}
}
