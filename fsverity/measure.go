package fsverity

import (
	"errors"
	"io"
	"os"
)

// MeasureOrCompute returns f's fs-verity digest made with alg: the one the
// kernel measured when f has fs-verity enabled with alg, otherwise one
// computed here from f's content (read from offset 0, whatever f's file
// offset). measured tells which. A file with fs-verity made with another
// algorithm is computed too. Errors other than "not enabled" and "not
// supported" from the kernel are returned, as are read errors; every error
// names the file.
func MeasureOrCompute(f *os.File, alg Algorithm) (d []byte, measured bool, err error) {
	if err := alg.check(); err != nil {
		return nil, false, err
	}
	got, gotDigest, err := Measure(f)
	switch {
	case err == nil && got == alg:
		return gotDigest, true, nil
	case err != nil && !errors.Is(err, ErrNotEnabled) && !errors.Is(err, ErrNotSupported):
		return nil, false, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, false, &fileError{op: "stat", path: f.Name(), err: err}
	}
	h := New(alg)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
		return nil, false, &fileError{op: "read", path: f.Name(), err: err}
	}
	return h.Sum(nil), false, nil
}
