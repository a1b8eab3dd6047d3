package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
)

func TestRouteOCIArgs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"gocfs --repo R oci pull X", "gocfs oci --repo R pull X"},
		{"gocfs --repo=R --json oci images", "gocfs oci --repo=R --json images"},
		{"gocfs repo --repo R oci layer D", "gocfs oci --repo R layer D"},
		{"gocfs --repo R --threads 2 oci images", "gocfs oci --repo R --threads 2 images"},
		{"gocfs --repo R images", "gocfs --repo R images"},
		{"gocfs oci --repo R images", "gocfs oci --repo R images"},
		{"gocfs repo --repo R images", "gocfs repo --repo R images"},
		{"gocfs mkcomposefs oci x", "gocfs mkcomposefs oci x"},
		{"gocfs", "gocfs"},
	} {
		if got := strings.Join(routeOCIArgs(strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// runOCI runs "gocfs oci ARGS" and returns its standard output.
func runOCI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newOCICmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func ociTestLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A user xattr, which only "--xattrs keep-user-xattrs" keeps.
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0),
		PAXRecords: map[string]string{"SCHILY.xattr.user.gocfs-test": "1"}})
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(content))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ociTestLayout writes img to a new OCI image layout, tagged tag, and
// returns the layout's directory.
func ociTestLayout(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOCICommands(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image,
		ociTestLayer(t, map[string]string{"etc/a": strings.Repeat("a", 1000), "etc/small": "small"}),
		ociTestLayer(t, map[string]string{"etc/b": strings.Repeat("b", 70), "etc/.wh.a": ""}),
	)
	if err != nil {
		t.Fatal(err)
	}
	dir := ociTestLayout(t, img, "v1")
	rdir := filepath.Join(t.TempDir(), "repo")
	if _, err := repo.Init(rdir, repo.InitOptions{Insecure: true}, repo.Options{}); err != nil {
		t.Fatal(err)
	}

	out, err := runOCI(t, "--repo", rdir, "--json", "pull", "oci:"+dir+":v1", "test/img")
	if err != nil {
		t.Fatal(err)
	}
	var res oci.PullResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Name != "test/img" || len(res.Image) != 128 || len(res.Layers) != 2 {
		t.Fatalf("pull: %v %q", err, out)
	}
	out, err = runOCI(t, "--repo", rdir, "pull", "--local-fetch", "auto", "oci:"+dir+":v1")
	if err != nil || strings.TrimSpace(out) != res.Image {
		t.Errorf("pull as v1: %v %q", err, out)
	}
	// cfsctl's --local-fetch: its values, and no containers-storage:.
	if _, err := runOCI(t, "--repo", rdir, "pull", "--local-fetch", "always", "oci:"+dir+":v1"); err == nil || !strings.Contains(err.Error(), "disabled, auto or zerocopy") {
		t.Errorf("--local-fetch always: %v", err)
	}
	if _, err := runOCI(t, "--repo", rdir, "pull", "containers-storage:img"); err == nil || !strings.Contains(err.Error(), "no containers-storage: transport") {
		t.Errorf("containers-storage: source: %v", err)
	}

	// --max-size: the layers unpack to more than 1 KiB.
	rdir2 := filepath.Join(t.TempDir(), "repo")
	if _, err := repo.Init(rdir2, repo.InitOptions{Insecure: true}, repo.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := runOCI(t, "--repo", rdir2, "pull", "--max-size", "1K", "oci:"+dir+":v1", "small/img"); !errors.Is(err, oci.ErrTooLarge) {
		t.Errorf("pull --max-size 1K: %v, want ErrTooLarge", err)
	}

	out, err = runOCI(t, "--repo", rdir, "images")
	if err != nil || !strings.Contains(out, "test/img") || !strings.Contains(out, res.Image[:12]) {
		t.Errorf("images: %v %q", err, out)
	}
	out, err = runOCI(t, "--repo", rdir, "--json", "images")
	var infos []oci.ImageInfo
	if err != nil || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 {
		t.Errorf("images --json: %v %q", err, out)
	}

	checkOCIInspectAndLayers(t, rdir, img, res.Image)

	if os.Geteuid() == 0 {
		mnt := t.TempDir()
		if _, err := runOCI(t, "--repo", rdir, "mount", "--verity", "off", "test/img", mnt); err != nil {
			t.Fatalf("mount: %v", err)
		}
		var names []string
		ents, _ := os.ReadDir(filepath.Join(mnt, "etc"))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		b, _ := os.ReadFile(filepath.Join(mnt, "etc", "b"))
		mount.Unmount(mnt)
		if !reflect.DeepEqual(names, []string{"b", "small"}) || string(b) != strings.Repeat("b", 70) {
			t.Errorf("mounted: %v %q", names, b)
		}
	}

	if _, err := runOCI(t, "--repo", rdir, "rm", "test/img"); err != nil {
		t.Fatal(err)
	}
	out, err = runOCI(t, "--repo", rdir, "--json", "images")
	if err != nil || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 1 || infos[0].Name != "v1" {
		t.Errorf("images after rm: %v %q", err, out)
	}
}

// checkOCIInspectAndLayers checks inspect and layer on the pulled image
// img, whose composefs image is image, in the repository rdir.
func checkOCIInspectAndLayers(t *testing.T, rdir string, img v1.Image, image string) {
	out, err := runOCI(t, "--repo", rdir, "inspect", "test/img")
	var in oci.Inspection
	mdigest, _ := img.Digest()
	if err != nil || json.Unmarshal([]byte(out), &in) != nil || in.ManifestDigest != mdigest.String() || in.Image != image {
		t.Errorf("inspect: %v %q", err, out)
	}
	out, err = runOCI(t, "--repo", rdir, "inspect", "--manifest", "test/img")
	raw, _ := img.RawManifest()
	if err != nil || out != string(raw) {
		t.Errorf("inspect --manifest: %v %q", err, out)
	}
	out, err = runOCI(t, "--repo", rdir, "inspect", "--config", "test/img")
	rawc, _ := img.RawConfigFile()
	if err != nil || out != string(rawc) {
		t.Errorf("inspect --config: %v %q", err, out)
	}

	ls, _ := img.Layers()
	for _, l := range ls {
		id, _ := l.DiffID()
		rc, _ := l.Uncompressed()
		want, _ := io.ReadAll(rc)
		out, err := runOCI(t, "--repo", rdir, "layer", id.String())
		if err != nil || out != string(want) {
			t.Errorf("layer %s: %v, %d bytes, want %d", id, err, len(out), len(want))
		}
	}
	if _, err := runOCI(t, "--repo", rdir, "layer", "sha256:"+strings.Repeat("0", 64)); err == nil {
		t.Errorf("layer of an unknown diff ID: no error")
	}
}

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "1K": 1 << 10, "20G": 20 << 30, "3MiB": 3 << 20, "2tb": 2 << 40, "none": -1,
		"0": 0, "-5": 0, "1P": 0, "G": 0, "9223372036854775807K": 0,
	} {
		var n int64
		err := byteSize{&n}.Set(in)
		if want == 0 {
			if err == nil {
				t.Errorf("%q: %d, want an error", in, n)
			}
			continue
		}
		if err != nil || n != want {
			t.Errorf("%q: %d %v, want %d", in, n, err, want)
		}
	}
}
