package image

import (
	"errors"
	"fmt"
	"io"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/atomicfile"
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
func WriteFile(path string, root *tree.Node, opts Options) ([]byte, error) {
	h := fsverity.New(fsverity.SHA256)
	var writeErr error
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		writeErr = Write(io.MultiWriter(w, h), root, opts)
		return writeErr
	})
	switch {
	case err == nil:
		return h.Sum(nil), nil
	case writeErr != nil && (errors.Is(err, ErrTree) || errors.Is(err, ErrVersion)):
		return nil, err // about the tree, not the file
	case writeErr != nil:
		return nil, fmt.Errorf("image: writing %s: %w", path, err)
	}
	return nil, fmt.Errorf("image: %w", err) // atomicfile names the file
}
