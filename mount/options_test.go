package mount

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	const d = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want Options
		err  string // substring of the error; "" for success
	}{
		{in: "basedir=/a", want: Options{Basedirs: []string{"/a"}}},
		{in: "basedir=/a:/b:/c", want: Options{Basedirs: []string{"/a", "/b", "/c"}}},
		{in: `basedir=/a\,b`, want: Options{Basedirs: []string{"/a,b"}}},
		{in: `basedir=/a\\b`, want: Options{Basedirs: []string{`/a\b`}}},
		{in: `basedir=/a\b`, want: Options{Basedirs: []string{`/ab`}}},
		{in: `basedir=/a\`, want: Options{Basedirs: []string{"/a"}}},
		{in: `basedir=/a\\`, want: Options{Basedirs: []string{`/a\`}}},
		{in: `basedir=/a\,,ro`, want: Options{Basedirs: []string{"/a,"}, ReadOnly: true}},
		{in: `basedir=/a\\,ro`, want: Options{Basedirs: []string{`/a\`}, ReadOnly: true}},
		{in: "basedir=/x=y", want: Options{Basedirs: []string{"/x=y"}}},
		{in: `basedir=/a\:b`, want: Options{Basedirs: []string{"/a", "b"}}},
		{in: "basedir=/a,basedir=/b", want: Options{Basedirs: []string{"/b"}}},
		{in: "ro", want: Options{ReadOnly: true}},
		{in: "ro,rw", want: Options{}},
		{in: "rw,ro", want: Options{ReadOnly: true}},
		{in: "ro=whatever", want: Options{ReadOnly: true}},
		{in: "verity", want: Options{Verity: VerityRequire}},
		{in: "verity=no", want: Options{Verity: VerityRequire}},
		{in: "tryverity", want: Options{Verity: VerityTry}},
		{in: "tryverity,verity", want: Options{Verity: VerityRequire}},
		{in: "verity,tryverity", want: Options{Verity: VerityRequire}},
		{in: "digest=" + d, want: Options{ExpectedDigest: d, Verity: VerityRequire}},
		{in: "tryverity,digest=" + d, want: Options{ExpectedDigest: d, Verity: VerityRequire}},
		{in: "digest=abc,digest=" + d, want: Options{ExpectedDigest: d, Verity: VerityRequire}},
		{in: "upperdir=/u,workdir=/w", want: Options{UpperDir: "/u", WorkDir: "/w"}},
		{in: `upperdir=/u\,1,workdir=/w\\2`, want: Options{UpperDir: "/u,1", WorkDir: `/w\2`}},
		{in: "idmap=/proc/1/ns/user", want: Options{IDMapPath: "/proc/1/ns/user"}},
		{in: "basedir=/s,digest=" + d + ",upperdir=/u,workdir=/w,idmap=/ns,ro",
			want: Options{Basedirs: []string{"/s"}, ExpectedDigest: d, Verity: VerityRequire, UpperDir: "/u", WorkDir: "/w", IDMapPath: "/ns", ReadOnly: true}},

		{in: "basedir", err: "no value specified for basedir"},
		{in: "digest", err: "no value specified for digest"},
		{in: "upperdir", err: "no value specified for upperdir"},
		{in: "workdir", err: "no value specified for workdir"},
		{in: "idmap", err: "no value specified for idmap"},
		{in: "basedir=", err: "empty value for basedir"},
		{in: "basedir=/a::/b", err: "incorrect format"},
		{in: "basedir=:/a", err: "incorrect format"},
		{in: "basedir=/a:", err: "incorrect format"},
		{in: "foo", err: `unsupported option "foo"`},
		{in: "BASEDIR=/a", err: `unsupported option "BASEDIR"`},
		{in: `ro\,rw`, err: `unsupported option "ro\\,rw"`},
		{in: `base\dir=/a`, err: `unsupported option "base\\dir"`},
		{in: `basedir\=/a`, err: `unsupported option "basedir\\=/a"`},
		{in: "", err: `unsupported option ""`},
		{in: "ro,", err: `unsupported option ""`},
		{in: ",ro", err: `unsupported option ""`},
		{in: "ro,,rw", err: `unsupported option ""`},
		{in: "defaults", err: `unsupported option "defaults"`},
		{in: "rw,nosuid,nodev,noexec,noatime,nodiratime", want: Options{NoSuid: true, NoDev: true, NoExec: true, NoAtime: true, NoDiratime: true}},
		{in: "nosuid,suid,nodev,dev,noexec,exec,nodiratime,diratime", want: Options{}},
		{in: "noatime,strictatime", want: Options{StrictAtime: true}},
		{in: "strictatime,noatime", want: Options{NoAtime: true}},
		{in: "noatime,relatime", want: Options{}},
		{in: "strictatime,atime", want: Options{}},
	}
	for _, tt := range tests {
		got, err := ParseOptions(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("ParseOptions(%q) = %+v, %v; want error containing %q wrapping ErrInvalidOptions", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseOptions(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOptions(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseOptionsSloppy(t *testing.T) {
	o, skipped, err := ParseOptionsSloppy("rw,basedir=/s,foo,x-gvfs=1,ro,nodev,,bar=baz")
	want := Options{Basedirs: []string{"/s"}, ReadOnly: true, NoDev: true}
	if err != nil || !reflect.DeepEqual(o, want) || !reflect.DeepEqual(skipped, []string{"foo", "x-gvfs", "", "bar"}) {
		t.Errorf("ParseOptionsSloppy = %+v, %q, %v; want %+v, [foo x-gvfs \"\" bar]", o, skipped, err, want)
	}
	// Errors in known options still fail.
	if _, _, err := ParseOptionsSloppy("basedir,foo"); err == nil {
		t.Errorf("ParseOptionsSloppy accepted basedir without a value")
	}
}

func TestEscapeOption(t *testing.T) {
	for _, s := range []string{"", "/plain", "/a,b", `/a\b`, `/a\,b,`, `\`, `,,,`, "/a=b"} {
		opts, err := ParseOptions("upperdir=" + EscapeOption(s) + ",workdir=" + EscapeOption(s+"w"))
		if s == "" {
			if err == nil {
				t.Errorf("empty upperdir accepted")
			}
			continue
		}
		if err != nil || opts.UpperDir != s || opts.WorkDir != s+"w" {
			t.Errorf("EscapeOption(%q) = %q does not round-trip: %+v, %v", s, EscapeOption(s), opts, err)
		}
	}
}

func TestValidate(t *testing.T) {
	const d = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		o   Options
		err string
	}{
		{Options{}, "no basedir"},
		{Options{Basedirs: []string{""}}, "empty basedir"},
		{Options{Basedirs: []string{"/s"}, UpperDir: "/u"}, "together"},
		{Options{Basedirs: []string{"/s"}, WorkDir: "/w"}, "together"},
		{Options{Basedirs: []string{"/s"}, ExpectedDigest: "xyz"}, "64 hex digits"},
		{Options{Basedirs: []string{"/s"}, ExpectedDigest: d + "00"}, "64 hex digits"},
		{Options{Basedirs: []string{"/s"}, Verity: VerityMode(7)}, "unknown verity mode"},
		{Options{Basedirs: []string{"/s"}, NoAtime: true, StrictAtime: true}, "exclude"},
		{Options{Basedirs: []string{"/s"}, ExpectedDigest: d, UpperDir: "/u", WorkDir: "/w"}, ""},
		{Options{Basedirs: []string{"/s"}, ExpectedDigest: strings.ToUpper(d)}, ""},
	}
	for _, tt := range tests {
		_, err := tt.o.validate()
		if tt.err == "" {
			if err != nil {
				t.Errorf("validate(%+v): %v", tt.o, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("validate(%+v) = %v, want error containing %q", tt.o, err, tt.err)
		}
	}
}

func TestVerityModeString(t *testing.T) {
	for m, s := range map[VerityMode]string{VerityOff: "off", VerityTry: "try", VerityRequire: "require", 9: "VerityMode(9)"} {
		if m.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(m), m.String(), s)
		}
	}
}
