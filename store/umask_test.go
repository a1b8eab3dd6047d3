package store

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/internal/umask"
)

// Objects are 0644 whatever the umask: under umask 077 they are given
// their mode (the chmod that umask 022 spares).
func TestObjectModeUnderUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	defer func(f func() bool) { umaskKeeps0644 = f }(umaskKeeps0644)
	umaskKeeps0644 = sync.OnceValue(func() bool { return umask.Get()&0o644 == 0 })
	s, err := Open(filepath.Join(t.TempDir(), "objects"), Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter(nil)
	d, err := w.Put(bytes.Repeat([]byte("umask"), 100))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path(d))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("object has mode %v under umask 077", fi.Mode())
	}
}
