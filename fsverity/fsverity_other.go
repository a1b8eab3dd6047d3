//go:build !linux

package fsverity

import (
	"errors"
	"os"
)

// Enable enables fs-verity on f. fs-verity exists only on Linux: on this
// system Enable always fails with an error wrapping [ErrNotSupported] that
// names the file.
func Enable(f *os.File, alg Algorithm) error {
	if f == nil {
		return os.ErrInvalid
	}
	if !alg.Valid() {
		return &fileError{op: "enable", path: f.Name(), kind: ErrUnknownAlgorithm, err: errors.New(alg.String())}
	}
	return &fileError{op: "enable", path: f.Name(), kind: ErrNotSupported}
}

// EnableSigned is Enable with a builtin signature. fs-verity exists only
// on Linux: on this system it always fails with an error wrapping
// [ErrNotSupported].
func EnableSigned(f *os.File, alg Algorithm, sig []byte) error { return Enable(f, alg) }

// Measure returns the fs-verity algorithm and digest of f. fs-verity exists
// only on Linux: on this system Measure always fails with an error wrapping
// [ErrNotSupported] that names the file.
func Measure(f *os.File) (Algorithm, []byte, error) {
	if f == nil {
		return 0, nil, os.ErrInvalid
	}
	return 0, nil, &fileError{op: "measure", path: f.Name(), kind: ErrNotSupported}
}

// MeasureFD is [Measure] of an open descriptor. fs-verity exists only on
// Linux: on this system it always fails with an error wrapping
// [ErrNotSupported] that names the file.
func MeasureFD(fd int, name string) (Algorithm, []byte, error) {
	return 0, nil, &fileError{op: "measure", path: name, kind: ErrNotSupported}
}

// openRegular opens path read-only and checks that it is a regular file. It
// returns the file and its size.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, newFileError("open", path, nil, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, newFileError("stat", path, nil, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, newFileError("open", path, ErrNotRegular, nil)
	}
	return f, fi.Size(), nil
}
