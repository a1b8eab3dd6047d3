//go:build linux

package fsverity

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEnable enables fs-verity on a file in the temporary directory and on
// tmpfs. On a kernel or file system without fs-verity (as on the kernel the
// project is developed on) it checks the error; where fs-verity works it
// checks that the kernel's digest equals DigestFile's.
func TestEnable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	dirs := []string{t.TempDir()}
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		d, err := os.MkdirTemp("/dev/shm", "fsverity-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs = append(dirs, d)
		}
	}
	for _, dir := range dirs {
		for _, alg := range algs {
			p := writeFile(t, dir, "f-"+alg.String(), testData(3*BlockSize+5))
			want, err := DigestFile(p, alg)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			err = Enable(f, alg)
			if err != nil {
				var errno unix.Errno
				if !errors.Is(err, ErrNotSupported) || !errors.As(err, &errno) ||
					(errno != unix.EOPNOTSUPP && errno != unix.ENOTTY && errno != unix.ENOSYS) {
					t.Fatalf("Enable(%s) = %v (%#v), want ErrNotSupported wrapping EOPNOTSUPP, ENOTTY or ENOSYS", p, err, err)
				}
				if errors.Is(err, ErrNotEnabled) {
					t.Errorf("Enable error %v is also ErrNotEnabled", err)
				}
				if !strings.HasPrefix(err.Error(), "fsverity: enable "+p+": ") {
					t.Errorf("Enable error %q does not name the file", err)
				}
				t.Logf("%s: %v", dir, err)

				_, _, err = Measure(f)
				if !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrNotEnabled) {
					t.Errorf("Measure without fs-verity = %v, want ErrNotSupported or ErrNotEnabled", err)
				}
				if !strings.HasPrefix(err.Error(), "fsverity: measure "+p+": ") {
					t.Errorf("Measure error %q does not name the file", err)
				}
				_, _, fdErr := MeasureFD(int(f.Fd()), p)
				if fdErr == nil || fdErr.Error() != err.Error() {
					t.Errorf("MeasureFD without fs-verity = %v, Measure %v", fdErr, err)
				}
				continue
			}
			// fs-verity works here: the kernel must agree with us.
			if err := Enable(f, alg); err != nil {
				t.Errorf("Enable twice = %v, want nil", err)
			}
			gotAlg, got, err := Measure(f)
			if err != nil || gotAlg != alg || !bytes.Equal(got, want) {
				t.Errorf("Measure = %v, %x, %v; want %v, %x", gotAlg, got, err, alg, want)
			}
			gotAlg, got, err = MeasureFD(int(f.Fd()), p)
			if err != nil || gotAlg != alg || !bytes.Equal(got, want) {
				t.Errorf("MeasureFD = %v, %x, %v; want %v, %x", gotAlg, got, err, alg, want)
			}
		}
	}
}

func TestMeasureNotEnabled(t *testing.T) {
	p := writeFile(t, t.TempDir(), "f", []byte("data"))
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, err = Measure(f)
	switch {
	case errors.Is(err, ErrNotEnabled):
		if !errors.Is(err, unix.ENODATA) {
			t.Errorf("Measure error %v does not wrap ENODATA", err)
		}
	case errors.Is(err, ErrNotSupported):
	default:
		t.Errorf("Measure on a plain file = %v, want ErrNotEnabled or ErrNotSupported", err)
	}
}

func TestEnableBadArguments(t *testing.T) {
	if err := Enable(nil, SHA256); err == nil {
		t.Error("Enable(nil) = nil")
	}
	if _, _, err := Measure(nil); err == nil {
		t.Error("Measure(nil) succeeded")
	}
	p := writeFile(t, t.TempDir(), "f", nil)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Enable(f, 42); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("Enable with algorithm 42 = %v", err)
	}
	f.Close()
	if err := Enable(f, SHA256); !errors.Is(err, os.ErrClosed) || !strings.Contains(err.Error(), p) {
		t.Errorf("Enable on a closed file = %v", err)
	}
}

func TestIoctlErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		kind  error
	}{
		{unix.EOPNOTSUPP, ErrNotSupported},
		{unix.ENOTTY, ErrNotSupported},
		{unix.ENOSYS, ErrNotSupported},
		{unix.ENODATA, ErrNotEnabled},
		{unix.ETXTBSY, nil},
	} {
		err := ioctlError("enable", "/x", tc.errno)
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v: not wrapped", tc.errno)
		}
		for _, k := range []error{ErrNotSupported, ErrNotEnabled} {
			if errors.Is(err, k) != (k == tc.kind) {
				t.Errorf("%v: errors.Is(err, %v) = %v", tc.errno, k, !(k == tc.kind))
			}
		}
		if !strings.HasPrefix(err.Error(), "fsverity: enable /x: ") || !strings.HasSuffix(err.Error(), tc.errno.Error()) {
			t.Errorf("%v: message %q", tc.errno, err)
		}
	}
	err := ioctlError("enable", "/x", unix.EOPNOTSUPP)
	if want := "fsverity: enable /x: not supported by the kernel or file system: operation not supported"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}
