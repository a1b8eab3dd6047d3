package snapshotter

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// member is one entry of a test layer.
type member struct {
	name     string
	typ      byte
	body     string // content, or the target of a link
	mode     int64
	xattrs   map[string]string
	mtimeSec int64
}

func dir(name string) member { return member{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) member {
	return member{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func symlink(name, target string) member {
	return member{name: name, typ: tar.TypeSymlink, body: target, mode: 0o777}
}

// hardlink is a hard link member, with its target's mode and time as
// tar and docker write them (containerd's applier sets the inode's from
// the link member, gocfs's merge keeps the target's).
func hardlink(name, target string) member {
	return member{name: name, typ: tar.TypeLink, body: target, mode: 0o644}
}

// text returns n bytes of text that say what they are (more than 64, so
// that the file is an object rather than inline).
func text(what string, n int) string {
	return (strings.Repeat(what+" ", n/len(what)+1))[:n]
}

// layerTar makes the tar archive of members, every one with its own
// time (nanoseconds included) so that times are checked too.
func layerTar(t testing.TB, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	times := make(map[string]time.Time)
	for i, m := range members {
		hdr := &tar.Header{
			Name: m.name, Typeflag: m.typ, Mode: m.mode, Format: tar.FormatPAX,
			ModTime: base.Add(time.Duration(i)*time.Hour + time.Duration(i*1234567)),
		}
		if m.typ == tar.TypeLink {
			hdr.ModTime = times[m.body]
		}
		times[m.name] = hdr.ModTime
		if m.mtimeSec != 0 {
			hdr.ModTime = time.Unix(m.mtimeSec, 0)
		}
		switch m.typ {
		case tar.TypeReg:
			hdr.Size = int64(len(m.body))
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = m.body
		}
		for k, v := range m.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, m.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The test images. base has busybox (static, from Debian's
// busybox-static) as /bin/sh and the directories runc mounts on; the
// others build on it with every kind of change a layer makes.
func baseLayer(t testing.TB, busybox string) []member {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	m := []member{dir("bin/"), {name: "bin/busybox", typ: tar.TypeReg, body: string(bb), mode: 0o755}, symlink("bin/sh", "busybox")}
	for _, d := range []string{"proc/", "dev/", "sys/", "run/", "tmp/", "etc/", "data/", "data/gone/", "data/opq/", "data/opq/old/", "data/keep/"} {
		m = append(m, dir(d))
	}
	return append(m,
		file("etc/hostname", "gocfs-test\n"),
		file("data/base.txt", text("base layer file", 300)),
		file("data/gone/file.txt", text("removed by a whiteout of its directory", 200)),
		file("data/opq/old/x.txt", text("hidden by an opaque directory", 200)),
		file("data/opq/kept-name.txt", text("hidden too", 100)),
		file("data/keep/small", "tiny"),
		file("data/hl1", text("hard linked in the base", 150)),
		hardlink("data/hl2", "data/hl1"),
		hardlink("data/hl3", "data/hl1"),
		member{name: "data/xattr.txt", typ: tar.TypeReg, body: text("with an xattr", 100), mode: 0o600, xattrs: map[string]string{"user.gocfs": "value"}},
	)
}

func layer2() []member {
	return []member{
		dir("data/"),
		file("data/.wh.gone", ""),
		dir("data/opq/"),
		file("data/opq/.wh..wh..opq", ""),
		file("data/opq/new.txt", text("the opaque directory's new file", 120)),
		file("data/layer2.txt", text("second layer", 250)),
		file("data/base.txt", text("base file replaced in layer two", 310)),
		symlink("data/link", "layer2.txt"),
		symlink("data/abs-link", "/data/keep/small"),
		file("data/l2a", text("a hard link pair of layer two", 90)),
		hardlink("data/l2b", "data/l2a"),
		{name: "data/setuid", typ: tar.TypeReg, body: text("setuid bits", 70), mode: 0o4755},
	}
}

func layer3() []member {
	return []member{
		dir("data/"),
		file("data/.wh.hl2", ""),
		dir("data/deep/"), dir("data/deep/a/"), dir("data/deep/a/b/"),
		file("data/deep/a/b/c.txt", text("three directories deep", 130)),
		file("data/l3.txt", text("third layer", 170)),
		{name: "data/empty", typ: tar.TypeReg, mode: 0o640},
	}
}

// image2Top is the top layer of the second image: three new files (each
// an object) and two whose contents the first image has.
func image2Top() []member {
	return []member{
		dir("data/"),
		file("data/new1.txt", text("only in image two, first", 200)),
		file("data/new2.txt", text("only in image two, second", 200)),
		file("data/new3.txt", text("only in image two, third", 200)),
		file("data/copy-of-l3.txt", text("third layer", 170)),
		file("data/copy-of-base.txt", text("base file replaced in layer two", 310)),
	}
}

const image2NewObjects = 3

// bigLayer is a layer with one file of size random bytes.
func bigLayer(size int) []member {
	b := make([]byte, size)
	rand.New(rand.NewSource(17)).Read(b)
	return []member{dir("data/"), file("data/big", string(b))}
}

// pushImage pushes an image of the layers to ref (on a plain HTTP
// registry).
func pushImage(t testing.TB, ref string, layers ...[]byte) {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		data := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Cmd: []string{"/bin/sh"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}
