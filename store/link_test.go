package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/store"
)

// Objects are published whichever way their temporary file is linked
// (AT_EMPTY_PATH, or through /proc/self/fd), and Has finds them by a
// lookup in their fan-out directory.
func TestPublishBothLinkWays(t *testing.T) {
	for _, proc := range []bool{false, true} {
		restore := store.SetLinkThroughProc(proc)
		s := openStore(t, store.Options{})
		w := s.NewWriter(nil)
		data := bytes.Repeat([]byte{0x42, byte(len(t.Name()))}, 5000)
		d, err := w.Put(data)
		if err == nil {
			err = w.Sync()
		}
		restore()
		if err != nil {
			t.Fatalf("through /proc %v: %v", proc, err)
		}
		got, err := os.ReadFile(s.Path(d))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("through /proc %v: object %s: %v", proc, d, err)
		}
		if ok, err := s.Has(d); !ok || err != nil {
			t.Fatalf("through /proc %v: Has = %v, %v", proc, ok, err)
		}
	}
}

// Has looks objects up by name: a missing fan-out directory or object is
// absent, anything but a regular file under an object's name (or a
// symbolic link as its fan-out directory) is refused.
func TestHasLookups(t *testing.T) {
	s := openStore(t, store.Options{})
	d := digestOf(t, []byte("some content for has"), fsverity.SHA256)
	if ok, err := s.Has(d); ok || err != nil {
		t.Fatalf("empty store: Has = %v, %v", ok, err)
	}
	p := s.Path(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Has(d); ok || err != nil {
		t.Fatalf("fan-out directory only: Has = %v, %v", ok, err)
	}
	for name, mk := range map[string]func() error{
		"symlink": func() error { return os.Symlink("/etc/passwd", p) },
		"fifo":    func() error { return unix.Mkfifo(p, 0o644) },
		"dir":     func() error { return os.Mkdir(p, 0o755) },
	} {
		if err := mk(); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Has(d); ok || !errorsIs(err, store.ErrUnexpected) {
			t.Errorf("%s as the object: Has = %v, %v; want ErrUnexpected", name, ok, err)
		}
		os.Remove(p)
	}
	// A fan-out directory that is a symbolic link, in a new store (the
	// first one keeps the directory it opened).
	s2 := openStore(t, store.Options{})
	other := t.TempDir()
	if err := os.Symlink(other, filepath.Join(s2.Dir(), d.Hex()[:2])); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, d.Hex()[2:]), []byte("some content for has"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := s2.Has(d); ok || !errorsIs(err, store.ErrUnexpected) {
		t.Errorf("symbolic link as the fan-out directory: Has = %v, %v; want ErrUnexpected", ok, err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
