package oci

import "github.com/gocfs/gocfs/repo"

// objectStore is what importing a layer needs to store file contents as
// objects: the repository's object writer (*repo.ObjectWriter), behind an
// interface so that tests can make it fail.
type objectStore interface {
	// Put stores data as an object (unless present) and returns its
	// digest.
	Put(data []byte) ([]byte, error)
	// Create starts an object written piece by piece.
	Create() (*repo.ObjectFile, error)
}
