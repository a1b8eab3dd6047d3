package umask

import (
	"testing"

	"golang.org/x/sys/unix"
)

// parse reads the Umask line; anything else is not a umask.
func TestParse(t *testing.T) {
	for status, want := range map[string]int{
		"Name:\tgocfs\nUmask:\t0022\nState:\tR\n": 0o22,
		"Umask:\t0002\n": 0o2,
		"Umask:\t0000\n": 0,
		"Umask:\t0077\n": 0o77,
	} {
		if got, ok := parse(status); !ok || got != want {
			t.Errorf("%q: %o %v, want %o", status, got, ok, want)
		}
	}
	for _, status := range []string{"Umask:\tzz\n", "Name:\tgocfs\n", "Umask:\t01777\n"} {
		if _, ok := parse(status); ok {
			t.Errorf("%q parsed", status)
		}
	}
}

// Get gives the umask the process has, and leaves it so.
func TestGet(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	if got := Get(); got != 0o027 {
		t.Errorf("Get: %o, want 027", got)
	}
	if now := unix.Umask(0o027); now != 0o027 {
		t.Errorf("Get changed the umask to %o", now)
	}
}
