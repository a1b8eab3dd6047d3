package oci

import (
	"context"

	"github.com/gocfs/gocfs/repo"
)

// Remove removes the OCI image called name: its record's name
// (streams/refs/oci/NAME) and, if it still names the image's composefs
// image, images/refs/NAME. Garbage collection then removes what no other
// image needs.
func Remove(r *repo.Repo, name string) error {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return err
	}
	ref, _, _, err := findTag(r, name)
	if err != nil {
		return err
	}
	return r.Update(context.Background(), func(tx *repo.Tx) error {
		if d, err := r.ResolveRef(name); err == nil && d.Hex() == rec.Image {
			if err := tx.RemoveImageRef(name); err != nil {
				return err
			}
		}
		return tx.RemoveStreamRef(ref)
	})
}
