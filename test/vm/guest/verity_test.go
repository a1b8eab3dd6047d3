//go:build vmguest && linux

package guest

// fs-verity through gocfs's own package: the guest checks gocfs's userspace
// digest against what the kernel measures.

import (
	"fmt"
	"os"

	"github.com/gocfs/gocfs/fsverity"
)

// enablePath enables fs-verity (SHA-256, 4 KiB blocks) on the file at path.
func enablePath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fsverity.Enable(f, fsverity.SHA256)
}

// measurePath returns the kernel's SHA-256 fs-verity digest of the file at
// path. A file without fs-verity gives an error wrapping
// fsverity.ErrNotEnabled.
func measurePath(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	alg, d, err := fsverity.Measure(f)
	if err != nil {
		return nil, err
	}
	if alg != fsverity.SHA256 {
		return nil, fmt.Errorf("%s: fs-verity algorithm %v, want SHA-256", path, alg)
	}
	return d, nil
}

// digestFile is gocfs's userspace fs-verity digest of the file at path.
func digestFile(path string) ([]byte, error) {
	return fsverity.DigestFile(path, fsverity.SHA256)
}
