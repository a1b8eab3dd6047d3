package fuse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// TestRedirectAndMetacopyDecoding: files are served by what package schema
// decodes: a redirect naming nothing ("/", "/\x00") and a metacopy value
// overlayfs would refuse get EIO, as image.Read reads them (no payload; an
// error), while well-formed SHA-256 and SHA-512 ones are served.
func TestRedirectAndMetacopyDecoding(t *testing.T) {
	content := func(name string) []byte { return bytes.Repeat([]byte(name+"\n"), 500) }
	root := tree.New(tree.ModeDir | 0o755)
	objects := map[string][]byte{}
	for name, payload := range map[string]string{"slash": "s", "nul": "ee/nul", "sha256": "ee/sha256", "sha512": "ee/sha512", "flags": "ee/flags"} {
		data := content(name)
		n := regular(payload, data, true)
		if name == "sha512" {
			n.Digest = fsverity.Sum(data, fsverity.SHA512)
		}
		must(t, root.AddChild(name, n))
		objects[payload] = data
	}
	img, store := writeImage(t, root, objects)
	b, err := os.ReadFile(img)
	must(t, err)
	testutil.PatchXattr(t, b, "/slash", schema.Redirect, []byte("/"))
	testutil.PatchXattr(t, b, "/nul", schema.Redirect, []byte("/\x00e/nul"))
	meta := append([]byte{0, 36, 1, byte(fsverity.SHA256)}, fsverity.Sum(content("flags"), fsverity.SHA256)...)
	testutil.PatchXattr(t, b, "/flags", schema.Metacopy, meta)
	must(t, os.WriteFile(img, b, 0o644))

	_, dir, l := mountFUSE(t, img, mount.Options{Basedirs: []string{store}, NoVerify: true, Verity: VerityTry})
	for _, name := range []string{"sha256", "sha512"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, content(name)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"slash", "nul", "flags"} {
		if _, err := os.ReadFile(filepath.Join(dir, name)); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: %v, want EIO", name, err)
		}
		if len(l.matching("/"+name+":")) != 1 {
			t.Errorf("%s: no log line saying why", name)
		}
	}
}
