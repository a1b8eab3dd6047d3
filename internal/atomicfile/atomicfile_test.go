package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := Write(p, 0o640, write("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, 0o600, write("two")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	st, _ := os.Stat(p)
	if err != nil || string(b) != "two" || st.Mode().Perm() != 0o600 {
		t.Errorf("after two writes: %q, %v, mode %v", b, err, st.Mode())
	}

	// A failing write leaves the old content and no temporary file.
	boom := errors.New("boom")
	err = Write(p, 0o600, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if err != boom {
		t.Errorf("failing write: %v, want its own error", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Errorf("after a failed write: %q, want the old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}

	// A directory that isn't there: a *CreateError naming the file.
	missing := filepath.Join(dir, "no", "f")
	var ce *CreateError
	if err := Write(missing, 0o600, write("x")); !errors.As(err, &ce) || ce.Path != missing || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}
