package image_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/assets"
	"github.com/gocfs/gocfs/tree"
)

// assetsDir returns upstream's reference assets: the repository's own
// checked copy, or $GOCFS_ASSETS.
func assetsDir(t testing.TB) string { return assets.Dir(t) }

// nonStrict lists the assets upstream parses without CFS_PARSE_STRICT.
var nonStrict = map[string]bool{
	"no-newline.dump":                      true,
	"longlink.dump":                        true,
	"honggfuzz-longlink-unterminated.dump": true,
}

type asset struct {
	name    string
	dump    []byte
	sha256  string
	opts    image.Options
	strict  bool
	hasHash bool
}

func loadAssets(t testing.TB) []asset {
	dir := assetsDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []asset
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".dump") && !strings.HasSuffix(name, ".dump.gz") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		a := asset{name: name, dump: data, opts: image.DefaultOptions, strict: !nonStrict[name]}
		if sum, err := os.ReadFile(filepath.Join(dir, name+".sha256")); err == nil {
			a.sha256 = strings.Fields(string(sum))[0]
			a.hasHash = true
		}
		if v, err := os.ReadFile(filepath.Join(dir, name+".version")); err == nil {
			n, err := strconv.Atoi(strings.TrimSpace(string(v)))
			if err != nil {
				t.Fatalf("%s.version: %v", name, err)
			}
			a.opts = image.Options{MinVersion: n, MaxVersion: n}
		}
		out = append(out, a)
	}
	if len(out) < 20 {
		t.Fatalf("only %d assets found in %s", len(out), dir)
	}
	return out
}

func build(t testing.TB, root *tree.Node, opts image.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := image.Write(&buf, root, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAssets checks every reference dump gives upstream's image byte for
// byte, and every should-fail dump is refused.
func TestAssets(t *testing.T) {
	checked := 0
	for _, a := range loadAssets(t) {
		t.Run(a.name, func(t *testing.T) {
			root, err := dump.Parse(bytes.NewReader(a.dump), dump.Options{Strict: a.strict, FileName: a.name})
			if strings.HasPrefix(a.name, "should-fail-") {
				if err == nil {
					err = image.Write(io.Discard, root, a.opts)
				}
				if err == nil {
					t.Fatalf("%s was accepted", a.name)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.hasHash {
				t.Fatalf("no .sha256 for %s", a.name)
			}
			img := build(t, root, a.opts)
			sum := sha256.Sum256(img)
			if got := hex.EncodeToString(sum[:]); got != a.sha256 {
				t.Fatalf("image sha256 %s, want %s", got, a.sha256)
			}
			// Same input, same bytes.
			if again := build(t, root, a.opts); !bytes.Equal(again, img) {
				t.Fatal("writing the same tree twice gave different images")
			}
			checked++
		})
	}
	if checked < 12 {
		t.Errorf("only %d assets checked", checked)
	}
}

// TestDumpRoundTrip checks that printing a parsed dump and parsing it
// again gives the same image.
func TestDumpRoundTrip(t *testing.T) {
	for _, a := range loadAssets(t) {
		if strings.HasPrefix(a.name, "should-fail-") {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			root, err := dump.Parse(bytes.NewReader(a.dump), dump.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := dump.NewWriter(&text).WriteTree(root); err != nil {
				t.Fatal(err)
			}
			root2, err := dump.Parse(bytes.NewReader(text.Bytes()), dump.Options{Strict: true})
			if err != nil {
				t.Fatalf("reparsing our dump: %v", err)
			}
			var text2 bytes.Buffer
			if err := dump.NewWriter(&text2).WriteTree(root2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(text.Bytes(), text2.Bytes()) {
				t.Fatal("dump -> parse -> dump is not stable")
			}
			if !bytes.Equal(build(t, root, a.opts), build(t, root2, a.opts)) {
				t.Fatal("image of the reprinted dump differs")
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "img")
	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := tree.New(tree.ModeDir | 0o755)
	big := tree.New(tree.ModeRegular | 0o644)
	big.Size = 1 << 62
	if err := bad.AddChild("big", big); err != nil {
		t.Fatal(err)
	}
	if _, err := image.WriteFile(out, bad, image.DefaultOptions); err == nil {
		t.Fatal("a file too large for the format was accepted")
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Fatalf("a failed write changed the existing file: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("a failed write left files behind: %v", ents)
	}
	good := tree.New(tree.ModeDir | 0o755)
	digest, err := image.WriteFile(out, good, image.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	want, err := image.Digest(good, image.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest, want) {
		t.Fatal("WriteFile and Digest disagree")
	}
}

func TestVersions(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	wh := tree.New(tree.ModeChar | 0o644)
	if err := root.AddChild("gone", wh); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts image.Options
		want int
	}{
		{image.DefaultOptions, 1},
		{image.Options{}, 0},
		{image.Options{MinVersion: 1}, 1},
		{image.Options{MinVersion: 0, MaxVersion: 0}, 0},
	} {
		v, err := image.Version(root, tc.opts)
		if err != nil || v != tc.want {
			t.Errorf("Version(%+v) = %d, %v; want %d", tc.opts, v, err, tc.want)
		}
		img := build(t, root, tc.opts)
		if got := int(img[12]); got != tc.want {
			t.Errorf("header version %d, want %d", got, tc.want)
		}
	}
	if _, err := image.Version(root, image.Options{MinVersion: 2}); err == nil {
		t.Error("version 2 accepted")
	}
	// Without whiteouts the default stays at version 0.
	if v, _ := image.Version(tree.New(tree.ModeDir|0o755), image.DefaultOptions); v != 0 {
		t.Errorf("version %d for a tree without whiteouts, want 0", v)
	}
}

// TestSHA512Metacopy checks the 68-byte metacopy written for a SHA-512
// digest, and that reading the image gives the digest back.
func TestSHA512Metacopy(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	f := tree.New(tree.ModeRegular | 0o644)
	f.Size = 5000
	f.Digest = bytes.Repeat([]byte{0xab}, 64)
	f.Payload = "ab/" + strings.Repeat("ab", 63)
	if err := root.AddChild("f", f); err != nil {
		t.Fatal(err)
	}
	img := build(t, root, image.DefaultOptions)
	want := append([]byte{0, 68, 0, 2}, f.Digest...)
	if !bytes.Contains(img, want) {
		t.Fatal("no 68-byte SHA-512 metacopy value in the image")
	}
	back, err := image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := back.Lookup("f"); g == nil || !bytes.Equal(g.Digest, f.Digest) || g.Payload != f.Payload {
		t.Fatalf("read back as %+v", g)
	}
	if again := build(t, back, image.DefaultOptions); !bytes.Equal(again, img) {
		t.Fatal("image -> tree -> image differs")
	}
	f.Digest = f.Digest[:40]
	if err := image.Write(io.Discard, root, image.DefaultOptions); err == nil {
		t.Fatal("a 40-byte digest was accepted")
	}
}
