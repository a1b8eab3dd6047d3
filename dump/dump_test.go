package dump

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/tree"
)

func TestEscapeRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, mode := range []int{escapeStandard, noEscapeSpace, escapeEqual, escapeLoneDash} {
		for _, s := range [][]byte{all, []byte("plain"), []byte("a b=c\\d\ne\rf\tg"), []byte("-"), {}} {
			esc := appendEscaped(nil, s, mode)
			if mode != noEscapeSpace && bytes.ContainsAny(esc, " \n\t\r") {
				t.Errorf("mode %d: %q left a separator: %q", mode, s, esc)
			}
			got, err := unescape(esc)
			if err != nil {
				t.Fatalf("mode %d: unescape(%q): %v", mode, esc, err)
			}
			if !bytes.Equal(got, s) {
				t.Errorf("mode %d: round trip of %q gave %q", mode, s, got)
			}
		}
	}
	if got := string(appendEscaped(nil, []byte("-"), escapeLoneDash)); got != `\x2d` {
		t.Errorf("lone dash escaped as %q", got)
	}
	if got := string(appendEscaped(nil, []byte("a=b é"), escapeEqual)); got != `a\x3db\x20\xc3\xa9` {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{`\`, `\x`, `\x4`, `\xzz`, `\q`} {
		if _, err := unescape([]byte(bad)); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

const sampleDump = `/ 4096 40755 3 0 0 0 1700000000.0 - - - user.a=b
/dev 0 20644 1 0 0 259 0.0 - - -
/dir 4096 40700 2 1000 1000 0 1700000001.5 - - - trusted.overlay.opaque=y
/dir/file 100 100644 2 0 0 0 1700000000.0 ab/cdef - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef user.x=\x00\x3d
/dir/link 100 @100644 2 0 0 0 1700000000.0 /dir/file - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef user.x=\x00\x3d
/inline 5 100600 1 0 0 0 0.0 - hello -
/sym 3 120777 1 0 0 0 0.0 foo - -
/with\x20space 0 100644 1 0 0 0 0.0 - - -
`

func TestParseAndPrint(t *testing.T) {
	root, err := Parse(strings.NewReader(sampleDump), Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	f := root.LookupPath("dir/file")
	if f.Payload != "ab/cdef" || len(f.Digest) != 32 || f.Nlink != 2 || f.Size != 100 {
		t.Fatalf("file parsed as %+v", f)
	}
	if v, ok := f.GetXattr("user.x"); !ok || string(v) != "\x00=" {
		t.Fatalf("xattr value %q", v)
	}
	if l := root.LookupPath("dir/link"); l.LinkTo != f {
		t.Fatal("hard link not resolved")
	}
	if d := root.LookupPath("dir"); d.MtimeNsec != 5 || d.UID != 1000 {
		t.Fatalf("dir parsed as %+v", d)
	}
	if c := root.LookupPath("inline"); string(c.Content) != "hello" {
		t.Fatal("inline content lost")
	}
	if d := root.LookupPath("dev"); d.Rdev != 259 {
		t.Fatal("rdev lost")
	}
	if root.LookupPath("with space") == nil {
		t.Fatal("escaped name not unescaped")
	}
	var out bytes.Buffer
	if err := NewWriter(&out).WriteTree(root); err != nil {
		t.Fatal(err)
	}
	if out.String() != sampleDump {
		t.Fatalf("printed dump differs:\n%s\nwant:\n%s", out.String(), sampleDump)
	}
}

func TestParseErrors(t *testing.T) {
	root := "/ 4096 40755 2 0 0 0 0.0 - - -\n"
	for _, tc := range []struct {
		name, in, want string
		strict         bool
	}{
		{"empty", "", "no files", false},
		{"no root", "/a 0 100644 1 0 0 0 0.0 - - -\n", "root", false},
		{"two roots", root + root, "more than one root", false},
		{"root not dir", "/ 0 100644 1 0 0 0 0.0 - - -\n", "root must be a directory", false},
		{"missing parent", root + "/a/b 0 100644 1 0 0 0 0.0 - - -\n", "parent directory missing", false},
		{"parent not dir", root + "/a 0 100644 1 0 0 0 0.0 - - -\n/a/b 0 100644 1 0 0 0 0.0 - - -\n", "not a directory", false},
		{"dup", root + "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n", "already exists", false},
		{"bad mode", root + "/a 0 1x 1 0 0 0 0.0 - - -\n", "invalid mode", false},
		{"no type", root + "/a 0 644 1 0 0 0 0.0 - - -\n", "invalid mode", false},
		{"bad size", root + "/a -1 100644 1 0 0 0 0.0 - - -\n", "invalid size", false},
		{"bad mtime", root + "/a 0 100644 1 0 0 0 5 - - -\n", "invalid mtime", false},
		{"content size", root + "/a 3 100644 1 0 0 0 0.0 - ab -\n", "content is 2 bytes", false},
		{"bad escape", root + "/a\\q 0 100644 1 0 0 0 0.0 - - -\n", "unsupported escape", false},
		{"nul", root + "/a\x00 0 100644 1 0 0 0 0.0 - - -\n", "NUL", false},
		{"nul escaped", root + "/a\\x00b 0 100644 1 0 0 0 0.0 - - -\n", "NUL in path", false},
		{"bad digest", root + "/a 100 100644 1 0 0 0 0.0 - - 12zz -\n", "invalid digest", false},
		{"xattr no =", root + "/a 0 100644 1 0 0 0 0.0 - - - user.a\n", "missing =", false},
		{"space before xattr", root + "/a 0 100644 1 0 0 0 0.0 - - -  user.a=b\n", "missing =", false},
		{"link to nothing", root + "/a 0 @100644 1 0 0 0 0.0 /nope - -\n", "no target", false},
		{"link without target", root + "/a 0 @100644 1 0 0 0 0.0 - - -\n", "without a target", false},
		{"no newline strict", strings.TrimSuffix(root, "\n"), "missing trailing newline", true},
		{"rdev strict", root + "/a 0 100644 1 0 0 7 0.0 - - -\n", "device number", true},
		{"symlink size strict", root + "/a 9 120777 1 0 0 0 0.0 foo - -\n", "symlink size", true},
		{"empty line", root + "\n", "empty path", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in), Options{Strict: tc.strict, FileName: "x.dump"})
			if err == nil {
				t.Fatalf("accepted %q", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not ErrSyntax", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "x.dump:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
		})
	}
}

func TestNonStrictTolerance(t *testing.T) {
	in := "/ 4096 40755 2 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 7 0.0 - - -\n/s 99 120777 1 0 0 0 0.0 tgt - -"
	root, err := Parse(strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := root.LookupPath("s"); s == nil || s.Size != 3 {
		t.Fatalf("symlink size not taken from its target: %+v", s)
	}
	if a := root.LookupPath("a"); a.Rdev != 0 {
		t.Fatal("rdev kept on a regular file")
	}
}

func TestReaderNext(t *testing.T) {
	r := NewReader(strings.NewReader(sampleDump), Options{})
	n := 0
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if e.Line != n {
			t.Fatalf("entry %d has line %d", n, e.Line)
		}
	}
	if n != 8 {
		t.Fatalf("%d entries, want 8", n)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after EOF: %v", err)
	}
}

func TestLongLine(t *testing.T) {
	in := "/ 4096 40755 2 0 0 0 0.0 - - - user.a=" + strings.Repeat("v", maxLine) + "\n"
	if _, err := Parse(strings.NewReader(in), Options{}); err == nil {
		t.Fatal("over-long line accepted")
	}
}

// FuzzParse parses arbitrary input; what parses must print and parse back
// to the same text.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleDump))
	f.Add([]byte("/ 4096 40755 2 0 0 0 0.0 - - -\n"))
	f.Add([]byte("/ 4096 40755 2 0 0 0 0.0 - - -\n/a 0 @100644 1 0 0 0 0.0 /a - -\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, strict := range []bool{false, true} {
			root, err := Parse(bytes.NewReader(data), Options{Strict: strict})
			if err != nil {
				continue
			}
			var a, b bytes.Buffer
			if err := NewWriter(&a).WriteTree(root); err != nil {
				t.Fatal(err)
			}
			root2, err := Parse(bytes.NewReader(a.Bytes()), Options{})
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, a.Bytes())
			}
			if err := NewWriter(&b).WriteTree(root2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("print/parse not stable:\n%s\n%s", a.Bytes(), b.Bytes())
			}
			_ = tree.New // the tree package is the model both sides share
		}
	})
}

// TestErrorsBounded: a 20 KB path or payload in a bad line gives an error
// of bounded length that still names the line.
func TestErrorsBounded(t *testing.T) {
	deep := "/" + strings.Repeat("d/", 10000) + "f"
	for _, line := range []string{
		deep + " 0 100644 1 0 0 0 0.0 - - - bad",
		"/f 0 120777 1 0 0 0 0.0 " + strings.Repeat("x", 30000) + " - - =",
		"/" + strings.Repeat("x", 30000) + " 0 1 1 0 0 0 0.0 - - -",
	} {
		r := NewReader(strings.NewReader("/ 0 40755 2 0 0 0 0.0 - - -\n"+line+"\n"), Options{Strict: true})
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if err == io.EOF {
			t.Fatalf("line of %d bytes accepted", len(line))
		}
		if msg := err.Error(); len(msg) > 600 || !strings.Contains(msg, "line 2") {
			t.Errorf("error of %d bytes (want at most 600, naming line 2): %.200s", len(msg), msg)
		}
	}
}
