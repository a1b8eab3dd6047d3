package fsverity

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// toolDigest runs `fsverity digest` from fsverity-utils on path.
func toolDigest(t *testing.T, tool, path string, alg Algorithm) []byte {
	t.Helper()
	cmd := exec.Command(tool, "digest", "--hash-alg="+alg.String(), "--block-size=4096", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v: %s", cmd, err, stderr.Bytes())
	}
	// The output is "sha256:HEX PATH".
	field, _, _ := strings.Cut(string(out), " ")
	name, hexDigest, ok := strings.Cut(field, ":")
	if !ok || name != alg.String() {
		t.Fatalf("%v: unexpected output %q", cmd, out)
	}
	d, err := ParseHex(hexDigest, alg)
	if err != nil {
		t.Fatalf("%v: output %q: %v", cmd, out, err)
	}
	return d
}

// TestAgainstFsverityTool compares with the digests Debian's fsverity tool
// (fsverity-utils) computes. It is skipped when the tool is not installed;
// TestGolden checks the same kind of values from constants.
func TestAgainstFsverityTool(t *testing.T) {
	tool, err := exec.LookPath("fsverity")
	if err != nil {
		t.Skip("fsverity tool not found in $PATH (install it with `apt-get install -y fsverity`); only the embedded golden digests are checked")
	}
	dir := t.TempDir()
	sizes := []int{0, 1, 4095, 4096, 4097, 64 * 4096, 65 * 4096, 128 * 4096, 129 * 4096, 1<<20 + 1,
		64*64*4096 + 1, 128 * 128 * 4096, 128*128*4096 + 1}
	for _, n := range sizes {
		if testing.Short() && n > bigSize {
			continue
		}
		// A different pattern from testData, so that the golden
		// constants and this test check different contents.
		data := testData(n + 8)[8:]
		p := writeFile(t, dir, fmt.Sprint(n), data)
		for _, alg := range algs {
			want := toolDigest(t, tool, p, alg)
			if got := Sum(data, alg); !bytes.Equal(got, want) {
				t.Errorf("%v size %d: Sum = %x, fsverity digest = %x", alg, n, got, want)
			}
			if got, err := DigestFile(p, alg); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%v size %d: DigestFile = %x, %v, fsverity digest = %x", alg, n, got, err, want)
			}
			if got, err := DigestFileParallel(context.Background(), p, alg, 2); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%v size %d: DigestFileParallel = %x, %v, fsverity digest = %x", alg, n, got, err, want)
			}
		}
	}
}
