//go:build !linux

package treecmp

import "errors"

// Diff fails: reading xattrs and device numbers needs Linux.
func Diff(want, got string, opts Options) ([]string, error) {
	return nil, errors.ErrUnsupported
}
