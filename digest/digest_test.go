package digest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fsverity"
)

func TestParse(t *testing.T) {
	h256 := strings.Repeat("ab", 32)
	h512 := strings.Repeat("cd", 64)
	tests := []struct {
		in      string
		alg     fsverity.Algorithm
		path    string
		wantErr bool
	}{
		{in: h256, alg: fsverity.SHA256, path: "ab/" + h256[2:]},
		{in: h512, alg: fsverity.SHA512, path: "cd/" + h512[2:]},
		{in: strings.ToUpper(h256), wantErr: true},
		{in: h256[:63], wantErr: true},
		{in: h256 + "0", wantErr: true},
		{in: "", wantErr: true},
		{in: strings.Repeat("g", 64), wantErr: true},
		{in: strings.Repeat("0", 96), wantErr: true},
	}
	for _, tt := range tests {
		d, err := Parse(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, %v; want ErrInvalid", tt.in, d, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if d.Algorithm() != tt.alg || d.Hex() != tt.in || d.ObjectPath() != tt.path || d.Size() != tt.alg.Size() {
			t.Errorf("Parse(%q) = %v %s %s", tt.in, d.Algorithm(), d.Hex(), d.ObjectPath())
		}
		p, err := ParseObjectPath("/" + d.ObjectPath())
		if err != nil || p != d {
			t.Errorf("ParseObjectPath(%q) = %v, %v", d.ObjectPath(), p, err)
		}
		b, err := FromBytes(d.Bytes())
		if err != nil || b != d || !d.Equal(tt.alg, d.Bytes()) || !bytes.Equal(d.AppendBytes([]byte("x")), append([]byte("x"), d.Bytes()...)) {
			t.Errorf("FromBytes round trip: %v, %v", b, err)
		}
	}
}

func TestObjectPathRejects(t *testing.T) {
	h := strings.Repeat("01", 32)
	for _, p := range []string{"", "ab", h, h[:2] + "//" + h[2:], "../" + h[2:], h[:2] + "/" + h[2:] + "/x", h[:3] + "/" + h[3:]} {
		if _, err := ParseObjectPath(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseObjectPath(%q) = %v; want ErrInvalid", p, err)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := New(fsverity.SHA512, make([]byte, 32)); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with a short SHA-512 digest: %v", err)
	}
	if _, err := New(3, make([]byte, 32)); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with an unknown algorithm: %v", err)
	}
	var z Digest
	if !z.IsZero() || z.Hex() != "" || z.ObjectPath() != "" || len(z.Bytes()) != 0 {
		t.Errorf("zero Digest: %v %q %q", z.IsZero(), z.Hex(), z.ObjectPath())
	}
	a := MustNew(fsverity.SHA256, make([]byte, 32))
	b, _ := Parse(strings.Repeat("0", 64))
	if a != b || a.IsZero() {
		t.Errorf("digests of the same bytes differ: %v %v", a, b)
	}
	m := map[Digest]bool{a: true}
	if !m[b] {
		t.Error("Digest is not usable as a map key")
	}
}

func FuzzParseObjectPath(f *testing.F) {
	f.Add("ab/" + strings.Repeat("0", 62))
	f.Add("/ab/" + strings.Repeat("f", 126))
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseObjectPath(s)
		if err != nil {
			return
		}
		if got := strings.TrimLeft(s, "/"); got != d.ObjectPath() {
			t.Fatalf("ParseObjectPath(%q) accepted a path that is not its own: %q", s, d.ObjectPath())
		}
	})
}
