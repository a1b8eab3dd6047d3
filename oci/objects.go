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
