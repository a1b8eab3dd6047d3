package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
)

func runVerifyCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := newVerifyCmd()
	var o bytes.Buffer
	cmd.SetOut(&o)
	cmd.SetErr(&o)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	code := exitStatus(t, cmd.Execute())
	return o.String(), code
}

func TestVerifyCommand(t *testing.T) {
	img := infoGoldenDir + "/mixed.img"
	out, code := runVerifyCmd(t, img)
	if code != 0 || !strings.Contains(out, ": OK (692 inodes") {
		t.Errorf("clean image: exit %d: %s", code, out)
	}
	out, code = runVerifyCmd(t, infoGoldenDir+"/redirect-odd.img")
	if code != 1 || !strings.HasPrefix(out, "/f: redirect: ") || !strings.Contains(out, "2 problems") {
		t.Errorf("bad image: exit %d: %s", code, out)
	}
	out, code = runVerifyCmd(t, "--json", infoGoldenDir+"/redirect-odd.img")
	var r struct {
		OK       bool
		Problems []struct{ Path, What, Why string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.OK || len(r.Problems) != 2 || r.Problems[1].Path != "/g" {
		t.Errorf("json: exit %d, %v: %s", code, err, out)
	}
	b, _ := os.ReadFile(img)
	d := fsverity.Hex(fsverity.Sum(b, fsverity.SHA256))
	if out, code := runVerifyCmd(t, "--digest", d, img); code != 0 {
		t.Errorf("right digest: %d %s", code, out)
	}
	wrong := strings.Repeat("0", 64)
	if out, code := runVerifyCmd(t, "--digest=sha256:"+wrong, img); code != 1 || !strings.Contains(out, "image: digest: ") {
		t.Errorf("wrong digest: %d %s", code, out)
	}
	if _, code := runVerifyCmd(t, "--digest=xyz", img); code != 2 {
		t.Errorf("bad --digest: exit %d", code)
	}
	if _, code := runVerifyCmd(t, filepath.Join(t.TempDir(), "none")); code != 2 {
		t.Errorf("missing image: exit %d", code)
	}
	base := t.TempDir()
	out, code = runVerifyCmd(t, "--basedir", base, img)
	if code != 1 || strings.Count(out, ": object: ") != 3 {
		t.Errorf("empty store: exit %d: %s", code, out)
	}
}
