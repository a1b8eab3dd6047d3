package schema

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		Redirect:         "trusted.overlay.redirect",
		Metacopy:         "trusted.overlay.metacopy",
		Opaque:           "trusted.overlay.opaque",
		Whiteout:         "trusted.overlay.whiteout",
		Whiteouts:        "trusted.overlay.whiteouts",
		EscapedWhiteout:  "trusted.overlay.overlay.whiteout",
		EscapedWhiteouts: "trusted.overlay.overlay.whiteouts",
		EscapedOpaque:    "trusted.overlay.overlay.opaque",
		UserWhiteout:     "user.overlay.whiteout",
		UserWhiteouts:    "user.overlay.whiteouts",
		UserOpaque:       "user.overlay.opaque",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	if RootWhiteoutName(0) != "00" || RootWhiteoutName(0xa7) != "a7" || RootWhiteoutName(RootWhiteouts-1) != "ff" {
		t.Errorf("root whiteout names: %s %s %s", RootWhiteoutName(0), RootWhiteoutName(0xa7), RootWhiteoutName(255))
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name, stored, shown string
		hidden              bool
	}{
		{name: "user.a", stored: "user.a", shown: "user.a"},
		{name: "trusted.x", stored: "trusted.x", shown: "trusted.x"},
		{name: "trusted.overlay.opaque", stored: "trusted.overlay.overlay.opaque", shown: "trusted.overlay.opaque"},
		{name: "trusted.overlay.overlay.x", stored: "trusted.overlay.overlay.overlay.x", shown: "trusted.overlay.overlay.x"},
		{name: "user.overlay.opaque", stored: "user.overlay.opaque", shown: "user.overlay.opaque"},
	}
	for _, tt := range tests {
		if got := Escape(tt.name); got != tt.stored {
			t.Errorf("Escape(%q) = %q, want %q", tt.name, got, tt.stored)
		}
		if got, ok := Unescape(tt.stored); !ok || got != tt.shown {
			t.Errorf("Unescape(%q) = %q, %v, want %q", tt.stored, got, ok, tt.shown)
		}
	}
	for _, name := range []string{Redirect, Metacopy, Opaque, Whiteout, "trusted.overlay."} {
		if _, ok := Unescape(name); ok {
			t.Errorf("Unescape(%q) shows overlayfs's own xattr", name)
		}
	}
}

func TestMetacopyRoundTrip(t *testing.T) {
	for _, alg := range []fsverity.Algorithm{fsverity.SHA256, fsverity.SHA512} {
		sum := bytes.Repeat([]byte{0xa5}, alg.Size())
		d := digest.MustNew(alg, sum)
		v := AppendMetacopy(nil, d)
		want := append([]byte{0, byte(4 + alg.Size()), 0, byte(alg)}, sum...)
		if !bytes.Equal(v, want) {
			t.Fatalf("%s: AppendMetacopy = % x, want % x", alg, v, want)
		}
		back, err := ParseMetacopy(v)
		if err != nil || back != d {
			t.Fatalf("%s: ParseMetacopy = %v, %v", alg, back, err)
		}
	}
	if v := AppendMetacopy([]byte("x"), digest.Digest{}); string(v) != "x" {
		t.Errorf("no digest: %q", v)
	}
}

// TestParseMetacopy holds each value to overlayfs's rules
// (ovl_check_metacopy_xattr: header, version 0, length field) and
// composefs's (no flags, an algorithm and digest that agree).
func TestParseMetacopy(t *testing.T) {
	d32 := bytes.Repeat([]byte{1}, 32)
	d64 := bytes.Repeat([]byte{2}, 64)
	hdr := func(b ...byte) []byte { return b }
	tests := []struct {
		name  string
		v     []byte
		alg   fsverity.Algorithm // 0: no digest
		error bool
	}{
		{name: "empty", v: nil},
		{name: "bare header", v: hdr(0, 4, 0, 0)},
		{name: "sha256", v: append(hdr(0, 36, 0, 1), d32...), alg: fsverity.SHA256},
		{name: "sha512", v: append(hdr(0, 68, 0, 2), d64...), alg: fsverity.SHA512},
		{name: "short", v: hdr(0, 3, 0), error: true},
		{name: "too long", v: append(append(hdr(0, 72, 0, 2), d64...), 0, 0, 0, 0), error: true},
		{name: "version 1", v: append(hdr(1, 36, 0, 1), d32...), error: true},
		{name: "length field", v: append(hdr(0, 35, 0, 1), d32...), error: true},
		{name: "flags", v: append(hdr(0, 36, 1, 1), d32...), error: true},
		{name: "sha512 with 32 bytes", v: append(hdr(0, 36, 0, 2), d32...), error: true},
		{name: "sha256 with 64 bytes", v: append(hdr(0, 68, 0, 1), d64...), error: true},
		{name: "unknown algorithm", v: append(hdr(0, 36, 0, 3), d32...), error: true},
		{name: "digest without algorithm", v: append(hdr(0, 36, 0, 0), d32...), error: true},
	}
	for _, tt := range tests {
		d, err := ParseMetacopy(tt.v)
		if tt.error {
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrInvalid) || !d.IsZero() {
				t.Errorf("%s: ParseMetacopy(% x) = %v, %v; want ErrInvalid", tt.name, tt.v, d, err)
			}
			continue
		}
		if err != nil || d.Algorithm() != tt.alg || (tt.alg != 0 && !bytes.Equal(d.Bytes(), tt.v[4:])) {
			t.Errorf("%s: ParseMetacopy(% x) = %v %v, %v", tt.name, tt.v, d.Algorithm(), d, err)
		}
	}
}

// TestRedirectPayload: the payload is the inverse of AppendRedirect, and a
// value naming nothing reads as no payload, whatever its spelling ("/" is
// the one upstream's reader alone turns into the payload "/").
func TestRedirectPayload(t *testing.T) {
	for _, p := range []string{"ab/cdef", "abc", "/abs", "x/../y"} {
		got, ok := RedirectPayload(AppendRedirect(nil, p))
		if !ok || got != p {
			t.Errorf("round trip of %q: %q, %v", p, got, ok)
		}
	}
	tests := []struct {
		v    string
		want string
		ok   bool
	}{
		{"", "", false},
		{"/", "", false},
		{"/\x00", "", false},
		{"\x00/ab", "", false},
		{"/\x00ab", "", false},
		{"//", "/", true},
		{"/ab\x00cd", "ab", true},
		{"ab", "ab", true},
	}
	for _, tt := range tests {
		got, ok := RedirectPayload([]byte(tt.v))
		if got != tt.want || ok != tt.ok {
			t.Errorf("RedirectPayload(%q) = %q, %v; want %q, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRedirect(t *testing.T) {
	h := strings.Repeat("0f", 32)
	d, err := ParseRedirect(AppendRedirect(nil, h[:2]+"/"+h[2:]))
	if err != nil || d.Hex() != h || d.Algorithm() != fsverity.SHA256 {
		t.Fatalf("ParseRedirect: %v, %v", d, err)
	}
	h5 := strings.Repeat("e1", 64)
	if d, err := ParseRedirect([]byte("/" + h5[:2] + "/" + h5[2:])); err != nil || d.Algorithm() != fsverity.SHA512 {
		t.Fatalf("ParseRedirect SHA-512: %v, %v", d, err)
	}
	for _, v := range []string{
		"", "/", h[:2] + "/" + h[2:], "//" + h[:2] + "/" + h[2:], "/" + h[:2] + "/" + h[2:] + "\x00",
		"/" + strings.ToUpper(h[:2]) + "/" + h[2:], "/" + h, "/abc", "/../../etc/passwd",
		"/" + h[:2] + "/" + h[2:] + "/x", "/" + h[:2] + "//" + h[2:],
	} {
		if d, err := ParseRedirect([]byte(v)); !errors.Is(err, ErrInvalid) || !d.IsZero() {
			t.Errorf("ParseRedirect(%q) = %v, %v; want ErrInvalid", v, d, err)
		}
	}
	long := "/" + strings.Repeat("a/", 50000)
	if _, err := ParseRedirect([]byte(long)); err == nil || len(err.Error()) > 1000 {
		t.Errorf("error for a 100 KB redirect is %d bytes", len(err.Error()))
	}
}

func TestShorten(t *testing.T) {
	if s := strings.Repeat("x", ShortenLimit); Shorten(s) != s {
		t.Error("a string at the limit was shortened")
	}
	deep := strings.Repeat("/a", 10000) + "/end"
	s := Shorten(deep)
	if len(s) > ShortenLimit+20 || !strings.HasPrefix(s, "/a/a/a") || !strings.HasSuffix(s, "/a/end") || !strings.Contains(s, "bytes)…") {
		t.Errorf("Shorten of a 10,000-deep path: %q", s)
	}
	name := strings.Repeat("é", 50000) // 100 KB, two bytes a rune
	s = Shorten(name)
	if len(s) > ShortenLimit+20 || !utf8.ValidString(s) {
		t.Errorf("Shorten of a 100 KB name: %d bytes, valid UTF-8 %v", len(s), utf8.ValidString(s))
	}
}
