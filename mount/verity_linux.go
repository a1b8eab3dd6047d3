//go:build linux

package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gocfs/gocfs/fsverity"
	"golang.org/x/sys/unix"
)

// VerifiedImage checks that the image f (called name in errors) has the
// fs-verity digest want, and returns what to read or mount: f itself when it
// has fs-verity enabled (the kernel then guarantees its content), otherwise
// a sealed private copy of it (a memfd) whose digest was computed here, so
// that what was checked is what is used, whatever happens to f afterwards.
// It also returns the size. The caller closes a returned file that is not f.
// A wrong digest gives an error wrapping ErrDigestMismatch that shows both.
func VerifiedImage(f *os.File, name string, want []byte) (_ *os.File, _ int64, retErr error) {
	alg, got, err := fsverity.Measure(f)
	switch {
	case err == nil && alg != fsverity.SHA256:
		// fs-verity with another hash (a SHA-512 repository's image):
		// the kernel's digest can't be compared; compute below.
	case err == nil:
		if !bytes.Equal(got, want) {
			return nil, 0, mismatch(name, want, got)
		}
		st, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		return f, st.Size(), nil
	case errors.Is(err, fsverity.ErrNotSupported), errors.Is(err, fsverity.ErrNotEnabled):
		// Compute it below.
	default:
		return nil, 0, fmt.Errorf("measuring the fs-verity digest of %s: %w", name, err)
	}

	mf, size, err := sealedCopy(f, name)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if retErr != nil {
			mf.Close()
		}
	}()
	got, err = fsverity.DigestReaderAt(context.Background(), mf, size, fsverity.SHA256, min(runtime.GOMAXPROCS(0), 4))
	if err != nil {
		return nil, 0, fmt.Errorf("computing the fs-verity digest of %s: %w", name, err)
	}
	if !bytes.Equal(got, want) {
		return nil, 0, mismatch(name, want, got)
	}
	return mf, size, nil
}

func mismatch(name string, want, got []byte) error {
	return fmt.Errorf("%s: %w: expected %s, image has %s", name, ErrDigestMismatch, fsverity.Hex(want), fsverity.Hex(got))
}

// sealedCopy copies f into a new memfd and seals it against every change,
// so that what is checked afterwards is what gets mounted, whatever happens
// to f meanwhile. It returns the memfd and its size.
func sealedCopy(f *os.File, name string) (*os.File, int64, error) {
	return SealedCopy(f, name, 0)
}

// SealedCopy copies f (called name in errors) from its start into a new
// memfd sealed against every change (write, grow, shrink, further seals),
// and returns it with its size: what is checked in the copy is what
// [MountFile] or [MountDetached] then mount, whatever happens to f. With
// limit > 0 it copies at most limit bytes and refuses a longer file with
// an error wrapping [ErrTooLarge], so that a caller's file can't make the
// copy take unbounded memory. The caller closes the copy.
func SealedCopy(f *os.File, name string, limit int64) (_ *os.File, _ int64, retErr error) {
	fd, err := unix.MemfdCreate("gocfs:"+filepath.Base(name), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, 0, fmt.Errorf("private copy of %s for the digest check (memfd_create): %w", name, err)
	}
	mf := os.NewFile(uintptr(fd), "memfd:"+name)
	defer func() {
		if retErr != nil {
			mf.Close()
		}
	}()
	// Copy to the end of f as it is now; the copy's size is what counts.
	max := int64(1 << 62)
	if limit > 0 {
		max = limit + 1
	}
	n, err := io.CopyBuffer(mf, io.NewSectionReader(f, 0, max), make([]byte, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("private copy of %s for the digest check: %w", name, err)
	}
	if limit > 0 && n > limit {
		return nil, 0, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, limit)
	}
	seals := unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(mf.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return nil, 0, fmt.Errorf("sealing the private copy of %s: %w", name, err)
	}
	return mf, n, nil
}

// decideVerity says whether to pass verity=require to overlayfs, and tells
// o.Notice when the object stores will not make that work as hoped.
func decideVerity(o *Options) bool {
	switch o.Verity {
	case VerityRequire:
		if ok, why := storesHaveVerity(o.Basedirs); !ok {
			o.notice("verity: fs-verity is required, but %s: every file whose content is in the object store will fail to read (EIO)", why)
		}
		return true
	case VerityTry:
		if ok, why := storesHaveVerity(o.Basedirs); !ok {
			o.notice("tryverity: mounting without fs-verity checks: %s", why)
			return false
		}
		// The decision rests on what the file system supports, never on
		// what objects happen to have: whoever can strip fs-verity from
		// one object must not be able to turn the checks off for all.
		if obj := objectWithoutVerity(o.Basedirs); obj != "" {
			o.notice("tryverity: fs-verity required; some objects lack it (e.g. %s) and will fail to read (EIO)", obj)
		}
		return true
	}
	return false
}

// storesHaveVerity tells whether every object store's file system (and
// this kernel) supports fs-verity. When not, why says what is missing.
func storesHaveVerity(dirs []string) (ok bool, why string) {
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return false, fmt.Sprintf("cannot probe %s for fs-verity: %v", dir, err)
		}
		// On a directory FS_IOC_MEASURE_VERITY answers ENODATA when the
		// file system supports fs-verity, and EOPNOTSUPP or ENOTTY when
		// it (or the kernel) does not.
		_, _, err = fsverity.Measure(d)
		d.Close()
		switch {
		case err == nil, errors.Is(err, fsverity.ErrNotEnabled):
		case errors.Is(err, fsverity.ErrNotSupported):
			return false, fmt.Sprintf("the file system of object store %s (or this kernel) has no fs-verity support", dir)
		default:
			return false, fmt.Sprintf("cannot probe %s for fs-verity: %v", dir, err)
		}
	}
	return true, ""
}

// objectWithoutVerity returns a sample object of the stores that lacks
// fs-verity, or "" when the sample finds none.
func objectWithoutVerity(dirs []string) string {
	for _, dir := range dirs {
		obj := sampleObject(dir)
		if obj == "" {
			continue
		}
		f, err := os.Open(obj)
		if err != nil {
			continue
		}
		_, _, err = fsverity.Measure(f)
		f.Close()
		if errors.Is(err, fsverity.ErrNotEnabled) {
			return obj
		}
	}
	return ""
}

// sampleObject returns the path of some regular file in the object store
// dir (whose objects are in subdirectories named by two hex digits), or ""
// when it finds none soon.
func sampleObject(dir string) string {
	d, err := os.Open(dir)
	if err != nil {
		return ""
	}
	names, _ := d.Readdirnames(64)
	d.Close()
	for _, n := range names {
		if len(n) != 2 {
			continue
		}
		sd, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		ents, _ := sd.ReadDir(8)
		sd.Close()
		for _, e := range ents {
			if e.Type().IsRegular() {
				return filepath.Join(dir, n, e.Name())
			}
		}
	}
	return ""
}
