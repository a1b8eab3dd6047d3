package store

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// keeps0644 reads the umask line of /proc/self/status.
func TestKeeps0644(t *testing.T) {
	for status, want := range map[string]bool{
		"Name:\tgocfs\nUmask:\t0022\nState:\tR\n": true,
		"Umask:\t0002\n": true,
		"Umask:\t0000\n": true,
		"Umask:\t0077\n": false,
		"Umask:\t0027\n": false,
		"Umask:\t0400\n": false,
		"Umask:\tzz\n":   false,
		"Name:\tgocfs\n": false,
	} {
		if got := keeps0644(status); got != want {
			t.Errorf("%q: %v, want %v", status, got, want)
		}
	}
}

// Objects are 0644 whatever the umask: under umask 077 they are given
// their mode (the chmod that umask 022 spares).
func TestObjectModeUnderUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	defer func(f func() bool) { umaskKeeps0644 = f }(umaskKeeps0644)
	umaskKeeps0644 = sync.OnceValue(func() bool {
		status, err := os.ReadFile("/proc/self/status")
		return err == nil && keeps0644(string(status))
	})
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
