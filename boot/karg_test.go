package boot

import (
	"errors"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// The digests of composefs-rs's own karg tests
// (crates/composefs-boot/src/cmdline.rs, SHA256_HEX and SHA512_HEX).
const (
	sha256Hex = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52"
	sha512Hex = "6f06b5e82420abec546d6e6d3ddd612c50cfa9b707c129345b7ec16f456b92fe" +
		"35df68999b042e1a6a70dfe75f2fed8cf9f67afd0bf08d2374678d75e2f65a02"
)

func mustDigest(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		want    []string // Karg.String() of each, in order
	}{
		{"", nil},
		{"quiet splash rw composefs", nil},
		{"root=UUID=abc composefs=" + sha256Hex + " rw", []string{"composefs=" + sha256Hex}},
		{"composefs=" + sha512Hex, []string{"composefs=" + sha512Hex}},
		{"composefs=?" + sha256Hex, []string{"composefs=?" + sha256Hex}},
		{"composefs.digest=v1-sha256-12:" + sha256Hex, []string{"composefs.digest=v1-sha256-12:" + sha256Hex}},
		{"composefs.digest=?v1-sha512-12:" + sha512Hex, []string{"composefs.digest=?v1-sha512-12:" + sha512Hex}},
		{"composefs.digest=v2-sha256-12:" + sha256Hex, []string{"composefs.digest=v2-sha256-12:" + sha256Hex}},
		// Order is kept (composefs-setup-root's test_parse_multiple_kargs_preserves_order).
		{"composefs=" + sha256Hex + " composefs.digest=v1-sha512-12:" + sha512Hex,
			[]string{"composefs=" + sha256Hex, "composefs.digest=v1-sha512-12:" + sha512Hex}},
		// Quoted words stay words; a quoted composefs= is not ours.
		{`foo="a b composefs=x" composefs=` + sha256Hex, []string{"composefs=" + sha256Hex}},
		// Tabs and newlines separate too (/proc/cmdline ends in one).
		{"a\tcomposefs=" + sha256Hex + "\n", []string{"composefs=" + sha256Hex}},
	}
	for _, tt := range tests {
		got, err := ParseCmdline(tt.cmdline)
		if err != nil {
			t.Errorf("ParseCmdline(%q): %v", tt.cmdline, err)
			continue
		}
		var s []string
		for _, k := range got {
			s = append(s, k.String())
		}
		if strings.Join(s, " ") != strings.Join(tt.want, " ") {
			t.Errorf("ParseCmdline(%q) = %q, want %q", tt.cmdline, s, tt.want)
		}
	}
}

func TestParseKargFields(t *testing.T) {
	ks, err := ParseCmdline("composefs.digest=?v1-sha512-12:" + sha512Hex + " composefs=" + sha256Hex)
	if err != nil || len(ks) != 2 {
		t.Fatal(ks, err)
	}
	if !ks[0].Insecure || ks[0].Version != 1 || ks[0].Digest.Algorithm() != fsverity.SHA512 || ks[0].Digest.Hex() != sha512Hex {
		t.Errorf("first karg = %+v", ks[0])
	}
	if ks[1].Insecure || ks[1].Version != 0 || ks[1].Digest.Algorithm() != fsverity.SHA256 {
		t.Errorf("second karg = %+v", ks[1])
	}
}

// A composefs argument that does not parse stops the boot: it is never
// skipped in favour of another (composefs-setup-root's
// test_parse_invalid_digest_errors and cmdline.rs's error tests).
func TestParseCmdlineErrors(t *testing.T) {
	bad := []string{
		"composefs=foo",
		"composefs=",
		"composefs=?",
		"composefs=" + sha256Hex[:63],
		"composefs=" + strings.ToUpper(sha256Hex),
		"composefs=" + sha256Hex + "00",
		"composefs.digest=v1-sha256-12:notahex",
		"composefs.digest=v1-sha256-8:" + sha256Hex,
		"composefs.digest=v1-sha512-99:" + sha512Hex,
		"composefs.digest=v3-sha256-12:" + sha256Hex,
		"composefs.digest=v1-sha256-12:" + sha512Hex, // length is not the named hash's
		"composefs.digest=" + sha256Hex,
		"composefs.digest=v1:" + sha256Hex,
		"composefs=" + sha256Hex + " composefs=bad",
	}
	for _, c := range bad {
		_, err := ParseCmdline(c)
		if !errors.Is(err, ErrKarg) {
			t.Errorf("ParseCmdline(%q) = %v, want ErrKarg", c, err)
		}
	}
}

func TestNewKarg(t *testing.T) {
	d := mustDigest(t, sha256Hex)
	for _, tt := range []struct {
		version  int
		insecure bool
		want     string
	}{
		{0, false, "composefs.digest=v1-sha256-12:" + sha256Hex},
		{1, false, "composefs.digest=v1-sha256-12:" + sha256Hex},
		{1, true, "composefs.digest=?v1-sha256-12:" + sha256Hex},
		{2, false, "composefs=" + sha256Hex},
		{2, true, "composefs=?" + sha256Hex},
	} {
		if got := NewKarg(d, tt.version, tt.insecure).String(); got != tt.want {
			t.Errorf("NewKarg(v%d, %v) = %s, want %s", tt.version, tt.insecure, got, tt.want)
		}
	}
	if got := NewKarg(mustDigest(t, sha512Hex), 1, false).String(); got != "composefs.digest=v1-sha512-12:"+sha512Hex {
		t.Errorf("SHA-512 karg = %s", got)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("composefs=?" + sha256Hex)
	f.Add(`a="b c" composefs.digest=v1-sha512-12:` + sha512Hex)
	f.Fuzz(func(t *testing.T, s string) {
		ks, err := ParseCmdline(s)
		if err != nil {
			return
		}
		for _, k := range ks {
			again, err := ParseCmdline(k.String())
			if err != nil || len(again) != 1 || again[0] != k {
				t.Fatalf("%q: %s does not parse back: %v %v", s, k, again, err)
			}
		}
	})
}

// composefs-boot's add_cmdline: replace the argument with the same key,
// else append to the options line, else add one.
func TestAddCmdline(t *testing.T) {
	lines := addCmdline([]string{"linux /k"}, "composefs=a")
	lines = addCmdline(lines, "rw")
	lines = addCmdline(lines, "composefs=b")
	lines = addCmdline(lines, "rw")
	if got := strings.Join(lines, "|"); got != "linux /k|options composefs=b rw" {
		t.Errorf("lines = %q", got)
	}
}
