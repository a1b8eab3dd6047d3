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
		{in: "basedir=/a", want: up(Options{Verity: VerityOff, Basedirs: []string{"/a"}})},
		{in: "basedir=/a:/b:/c", want: up(Options{Verity: VerityOff, Basedirs: []string{"/a", "/b", "/c"}})},
		{in: `basedir=/a\,b`, want: up(Options{Verity: VerityOff, Basedirs: []string{"/a,b"}})},
		{in: `basedir=/a\\b`, want: up(Options{Verity: VerityOff, Basedirs: []string{`/a\b`}})},
		{in: `basedir=/a\b`, want: up(Options{Verity: VerityOff, Basedirs: []string{`/ab`}})},
		{in: `basedir=/a\`, want: up(Options{Verity: VerityOff, Basedirs: []string{"/a"}})},
		{in: `basedir=/a\\`, want: up(Options{Verity: VerityOff, Basedirs: []string{`/a\`}})},
		{in: `basedir=/a\,,ro`, want: up(Options{Verity: VerityOff, Basedirs: []string{"/a,"}, ReadOnly: true})},
		{in: `basedir=/a\\,ro`, want: up(Options{Verity: VerityOff, Basedirs: []string{`/a\`}, ReadOnly: true})},
		{in: "basedir=/x=y", want: up(Options{Verity: VerityOff, Basedirs: []string{"/x=y"}})},
		{in: `basedir=/a\:b`, want: up(Options{Verity: VerityOff, Basedirs: []string{"/a", "b"}})},
		{in: "basedir=/a,basedir=/b", want: up(Options{Verity: VerityOff, Basedirs: []string{"/b"}})},
		{in: "ro", want: up(Options{Verity: VerityOff, ReadOnly: true})},
		{in: "ro,rw", want: up(Options{Verity: VerityOff})},
		{in: "rw,ro", want: up(Options{Verity: VerityOff, ReadOnly: true})},
		{in: "ro=whatever", want: up(Options{Verity: VerityOff, ReadOnly: true})},
		{in: "verity", want: up(Options{Verity: VerityRequire})},
		{in: "verity=no", want: up(Options{Verity: VerityRequire})},
		{in: "tryverity", want: up(Options{Verity: VerityTry})},
		{in: "tryverity,verity", want: up(Options{Verity: VerityRequire})},
		{in: "verity,tryverity", want: up(Options{Verity: VerityRequire})},
		{in: "digest=" + d, want: up(Options{ExpectedDigest: d, Verity: VerityRequire})},
		{in: "tryverity,digest=" + d, want: up(Options{ExpectedDigest: d, Verity: VerityRequire})},
		{in: "digest=abc,digest=" + d, want: up(Options{ExpectedDigest: d, Verity: VerityRequire})},
		{in: "upperdir=/u,workdir=/w", want: up(Options{Verity: VerityOff, UpperDir: "/u", WorkDir: "/w"})},
		{in: `upperdir=/u\,1,workdir=/w\\2`, want: up(Options{Verity: VerityOff, UpperDir: "/u,1", WorkDir: `/w\2`})},
		{in: "idmap=/proc/1/ns/user", want: up(Options{Verity: VerityOff, IDMapPath: "/proc/1/ns/user"})},
		{in: "basedir=/s,digest=" + d + ",upperdir=/u,workdir=/w,idmap=/ns,ro",
			want: up(Options{Basedirs: []string{"/s"}, ExpectedDigest: d, Verity: VerityRequire, UpperDir: "/u", WorkDir: "/w", IDMapPath: "/ns", ReadOnly: true})},

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
		{in: "rw,nosuid,nodev,noexec,noatime,nodiratime", want: Options{Verity: VerityOff, NoExec: true, NoAtime: true, NoDiratime: true}},
		{in: "nosuid,suid,nodev,dev,noexec,exec,nodiratime,diratime", want: up(Options{Verity: VerityOff})},
		{in: "noatime,strictatime", want: up(Options{Verity: VerityOff, StrictAtime: true})},
		{in: "strictatime,noatime", want: up(Options{Verity: VerityOff, NoAtime: true})},
		{in: "noatime,relatime", want: up(Options{Verity: VerityOff})},
		{in: "strictatime,atime", want: up(Options{Verity: VerityOff})},
		{in: "noverify", want: up(Options{Verity: VerityOff, NoVerify: true})},
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

// up is o with mount.composefs's defaults for dev and suid.
func up(o Options) Options {
	o.AllowDevices, o.AllowSetuid = true, true
	return o
}

func TestParseOptionsSloppy(t *testing.T) {
	o, skipped, err := ParseOptionsSloppy("rw,basedir=/s,foo,x-gvfs=1,ro,nodev,,bar=baz")
	want := Options{Basedirs: []string{"/s"}, ReadOnly: true, Verity: VerityOff, AllowSetuid: true}
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
		{Options{Basedirs: []string{"/s"}, Method: Method(7)}, "unknown mount method"},
		{Options{Basedirs: []string{"/s"}, Method: FUSE}, "method fuse"},
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

// TestParseApplies checks that Options.Parse changes only what the string
// names, so that "gocfs mount -o" keeps this package's defaults.
func TestParseApplies(t *testing.T) {
	o := Options{Basedirs: []string{"/s"}, Verity: VerityRequire}
	if err := o.Parse("ro,nodev"); err != nil {
		t.Fatal(err)
	}
	want := Options{Basedirs: []string{"/s"}, Verity: VerityRequire, ReadOnly: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("Parse(ro,nodev) = %+v, want %+v", o, want)
	}
	if err := o.Parse("dev,suid,tryverity"); err != nil {
		t.Fatal(err)
	}
	want.AllowDevices, want.AllowSetuid, want.Verity = true, true, VerityTry
	if !reflect.DeepEqual(o, want) {
		t.Errorf("Parse(dev,suid,tryverity) = %+v, want %+v", o, want)
	}
	if err := o.Parse("ro,bogus"); err == nil || !reflect.DeepEqual(o, want) {
		t.Errorf("Parse with an error: %v, changed o to %+v", err, o)
	}
	var zero Options
	if zero.Verity != VerityTry || zero.AllowDevices || zero.AllowSetuid || zero.NoVerify || zero.Method != Auto {
		t.Errorf("the zero Options are not the safe default: %+v", zero)
	}
}

func TestParseVerityMode(t *testing.T) {
	for _, m := range []VerityMode{VerityTry, VerityRequire, VerityOff} {
		if got, err := ParseVerityMode(strings.ToUpper(m.String())); err != nil || got != m {
			t.Errorf("ParseVerityMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseVerityMode("yes"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ParseVerityMode(yes): %v", err)
	}
}

func TestVerityModeString(t *testing.T) {
	for m, s := range map[VerityMode]string{VerityOff: "off", VerityTry: "try", VerityRequire: "require", 9: "VerityMode(9)"} {
		if m.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(m), m.String(), s)
		}
	}
}
