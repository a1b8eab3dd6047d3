package splitstream

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"

	"github.com/gocfs/gocfs/digest"
)

// digestBytes concatenates digests, as the on-disk arrays do.
func digestBytes(ds []digest.Digest) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, d.Bytes()...)
	}
	return b
}

// openFrom returns an open function over objects held in memory.
func openFrom(objects map[digest.Digest][]byte) func(digest.Digest) (io.ReadCloser, error) {
	return func(d digest.Digest) (io.ReadCloser, error) {
		b, ok := objects[d]
		if !ok {
			return nil, fmt.Errorf("object %s: %w", d, fs.ErrNotExist)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}
