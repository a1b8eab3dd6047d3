package oci

import (
	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/store"
)

// objectStore is what importing a layer needs to store file contents as
// objects: the repository's object writer (*store.Writer), behind an
// interface so that tests can make it fail.
type objectStore interface {
	// Put stores data as an object (unless present) and returns its
	// digest.
	Put(data []byte) (digest.Digest, error)
	// Create starts an object written piece by piece.
	Create() (*store.File, error)
}

// toDigests returns the digests ds (as split streams hold them) made with
// alg; a digest of another size is an error.
func toDigests(alg fsverity.Algorithm, ds [][]byte) ([]digest.Digest, error) {
	out := make([]digest.Digest, len(ds))
	for i, d := range ds {
		var err error
		if out[i], err = digest.New(alg, d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// objectDigest returns d, a digest made with alg (split streams and
// records are checked for it where they are read), as a digest.Digest;
// one of another size names no object.
func objectDigest(alg fsverity.Algorithm, d []byte) digest.Digest {
	od, err := digest.New(alg, d)
	if err != nil {
		return digest.Digest{} // names no object: opening it fails
	}
	return od
}
