package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/oci"
)

// "oci layer --dumpfile" prints a stored layer's members as composefs-rs's
// layer_dumpfile does (crates/composefs-oci/src/oci_image.rs: one
// TarEntry Display each, crates/composefs-oci/src/tar.rs; the line format
// of write_entry and write_hardlink, crates/composefs/src/dumpfile.rs),
// and "oci layer --json" its LayerInfo (same file).
func TestOCILayerDumpJSON(t *testing.T) {
	bin := testutil.GocfsBinary(t)
	mt := time.Unix(1700000000, 0)
	big := strings.Repeat("x", 100)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []struct {
		hdr  tar.Header
		data string
	}{
		{tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "etc/small", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b=c"}}, "hi there"},
		{tar.Header{Name: "etc/big", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 5, Gid: 6}, big},
		{tar.Header{Name: "etc/hl", Typeflag: tar.TypeLink, Linkname: "etc/big"}, ""},
		{tar.Header{Name: "etc/sym", Typeflag: tar.TypeSymlink, Linkname: "../x y", Mode: 0o777}, ""},
		{tar.Header{Name: "etc/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644}, ""},
		{tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, ""},
		{tar.Header{Name: "etc/dash", Typeflag: tar.TypeReg, Mode: 0o644}, "-"},
	} {
		h.hdr.ModTime, h.hdr.Size = mt, int64(len(h.data))
		if err := tw.WriteHeader(&h.hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(h.data))
	}
	tw.Close()
	tarball := buf.Bytes()
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(tarball))
	rdir := filepath.Join(t.TempDir(), "repo")
	run := func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--repo", rdir}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gocfs %q: %v", args, err)
		}
		return string(out)
	}
	run(nil, "init", "--insecure")
	stream := strings.TrimPrefix(strings.TrimSpace(run(tarball, "oci", "import-layer", diffID)), "sha512:")
	raw, err := fsverity.Digest(strings.NewReader(big), fsverity.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	obj := digest.MustNew(fsverity.SHA512, raw)
	want := strings.Join([]string{
		`/. 0 40755 1 0 0 0 1700000000.0 - - -`,
		`/etc 0 40755 1 0 0 0 1700000000.0 - - -`,
		`/etc/small 8 100644 1 0 0 0 1700000000.0 - hi\x20there - user.a=b\x3dc`,
		`/etc/big 100 100644 1 5 6 0 1700000000.0 ` + obj.ObjectPath() + ` - ` + obj.Hex(),
		`/etc/hl 0 @120000 - - - - 0.0 /etc/big - -`,
		`/etc/sym 6 120777 1 0 0 0 1700000000.0 ../x\x20y - -`,
		`/etc/.wh.gone 0 100644 1 0 0 0 1700000000.0 - - -`,
		`/dev/null 0 20666 1 0 0 259 1700000000.0 - - -`,
		`/etc/dash 1 100644 1 0 0 0 1700000000.0 - \x2d -`,
	}, "\n") + "\n"
	if got := run(nil, "oci", "layer", "--dumpfile", diffID); got != want {
		t.Errorf("oci layer --dumpfile:\n%s\nwant\n%s", got, want)
	}
	var info oci.LayerInfo
	for _, flag := range []string{"--json"} {
		if err := json.Unmarshal([]byte(run(nil, "oci", "layer", flag, diffID)), &info); err != nil {
			t.Fatal(err)
		}
		wantInfo := oci.LayerInfo{DiffID: diffID, Verity: stream, Size: uint64(len(tarball)), EntryCount: 9,
			Splitstream: oci.SplitstreamInfo{ExternalObjects: 1, ExternalSize: 100, InlineSize: uint64(len(tarball)) - 100}}
		if info != wantInfo {
			t.Errorf("oci layer %s: %+v, want %+v", flag, info, wantInfo)
		}
	}
	if out := run(nil, "oci", "layer", diffID); out != string(tarball) {
		t.Errorf("oci layer: %d bytes, want the %d of the archive", len(out), len(tarball))
	}
}
