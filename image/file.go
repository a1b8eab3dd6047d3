package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/tree"
)

// Digest returns the fs-verity (SHA-256) digest of root's image, which is
// what mount's digest= option checks, without writing the image anywhere.
func Digest(root *tree.Node, opts Options) ([]byte, error) {
	h := fsverity.New(fsverity.SHA256)
	if err := Write(h, root, opts); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// WriteFile writes root's image to path atomically: to a temporary file in
// the same directory, synced, then renamed over path, so that a failure
// never leaves a partial image behind. It returns the image's fs-verity
// digest.
func WriteFile(path string, root *tree.Node, opts Options) (digest []byte, retErr error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		// Name the image, not the temporary file.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("image: creating %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := fsverity.New(fsverity.SHA256)
	if err := Write(io.MultiWriter(f, h), root, opts); err != nil {
		if errors.Is(err, ErrTree) || errors.Is(err, ErrVersion) {
			return nil, err // about the tree, not the file
		}
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	// Make the new name durable too.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("image: syncing %s: %w", dir, err)
		}
	}
	return h.Sum(nil), nil
}
