package image_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// storeFile returns a regular file of the object store.
func storeFile(t *testing.T, payload string, digest []byte) *tree.Node {
	t.Helper()
	n := tree.New(tree.ModeRegular | 0o644)
	n.Size = 100
	n.Payload = payload
	n.Digest = digest
	return n
}

func writeTree(t *testing.T, root *tree.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := image.Write(&b, root, image.DefaultOptions); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRedirectNamingNothing: the redirect "/" (which overlayfs refuses,
// and which upstream's reader alone turns into the payload "/") reads as
// no payload, like "/\x00", as the FUSE server reads both.
func TestRedirectNamingNothing(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	for name, payload := range map[string]string{"slash": "s", "nul": "xy/nul", "ok": "xy/ok"} {
		if err := root.AddChild(name, storeFile(t, payload, nil)); err != nil {
			t.Fatal(err)
		}
	}
	img := writeTree(t, root)
	testutil.PatchXattr(t, img, "/slash", schema.Redirect, []byte("/"))
	testutil.PatchXattr(t, img, "/nul", schema.Redirect, []byte("/\x00xy/nul"))
	back, err := image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"slash": "", "nul": "", "ok": "xy/ok"} {
		n := back.Lookup(name)
		if n == nil || n.Payload != want || n.Size != 100 || !n.IsRegular() {
			t.Errorf("%s: %+v, want payload %q", name, n, want)
		}
	}
}

// TestReadMetacopy: Read takes SHA-256 and SHA-512 digests, and refuses a
// metacopy value overlayfs would refuse instead of taking a digest from it.
func TestReadMetacopy(t *testing.T) {
	d256 := fsverity.Sum([]byte("a"), fsverity.SHA256)
	d512 := fsverity.Sum([]byte("a"), fsverity.SHA512)
	root := tree.New(tree.ModeDir | 0o755)
	for name, d := range map[string][]byte{"f256": d256, "f512": d512, "none": nil} {
		if err := root.AddChild(name, storeFile(t, "ab/"+name, d)); err != nil {
			t.Fatal(err)
		}
	}
	img := writeTree(t, root)
	back, err := image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"f256": d256, "f512": d512, "none": nil} {
		if got := back.Lookup(name).Digest; !bytes.Equal(got, want) {
			t.Errorf("%s: digest %x, want %x", name, got, want)
		}
	}
	// A SHA-512 algorithm number on a 32-byte digest: upstream's reader
	// would take the 32 bytes; overlayfs refuses the file.
	bad := append([]byte{0, 36, 0, byte(fsverity.SHA512)}, d256...)
	testutil.PatchXattr(t, img, "/f256", schema.Metacopy, bad)
	_, err = image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{})
	if !errors.Is(err, erofs.ErrCorrupt) || !errors.Is(err, schema.ErrInvalid) || !strings.Contains(err.Error(), "/f256") {
		t.Errorf("malformed metacopy: %v", err)
	}
}

// TestReadErrorsBounded: an error about a path 10,000 directories deep
// quotes it shortened.
func TestReadErrorsBounded(t *testing.T) {
	root := tree.New(tree.ModeDir | 0o755)
	dir := root
	for i := 0; i < 10000; i++ {
		sub := tree.New(tree.ModeDir | 0o755)
		if err := dir.AddChild("d", sub); err != nil {
			t.Fatal(err)
		}
		dir = sub
	}
	d := fsverity.Sum(nil, fsverity.SHA256)
	if err := dir.AddChild("f", storeFile(t, "ab/f", d)); err != nil {
		t.Fatal(err)
	}
	img := writeTree(t, root)
	testutil.PatchXattr(t, img, strings.Repeat("/d", 10000)+"/f", schema.Metacopy, append([]byte{1, 36, 0, 1}, d...))
	_, err := image.Read(bytes.NewReader(img), int64(len(img)), image.ReadOptions{})
	if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "/d/f") {
		t.Errorf("error of %d bytes: %.500v", len(err.Error()), err)
	}
}
