package oci

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/gocfs/gocfs/repo"
)

// ImageCheck is what Fsck found of one OCI image.
type ImageCheck struct {
	Name string `json:"name"`
	// Error is empty when the image is sound.
	Error string `json:"error,omitempty"`
}

// FsckResult is Fsck's report: each OCI image checked, and the check of
// the whole repository (objects, images, references, streams).
type FsckResult struct {
	Images     []ImageCheck     `json:"images"`
	Repository *repo.FsckResult `json:"repository"`
}

// OK reports whether no problem was found.
func (f *FsckResult) OK() bool {
	for _, c := range f.Images {
		if c.Error != "" {
			return false
		}
	}
	return f.Repository.OK()
}

// Fsck checks the OCI image called name, or every tagged one when name is
// empty (cfsctl oci fsck): its manifest and configuration streams, each
// layer's stream read back to the diff ID the configuration names, and
// that the layers make the composefs image recorded at pull; then it
// checks the repository as repo.Repo.Fsck does.
func Fsck(ctx context.Context, r *repo.Repo, name string) (*FsckResult, error) {
	names := []string{name}
	if name == "" {
		var err error
		if names, err = recordNames(r); err != nil {
			return nil, err
		}
	}
	res := &FsckResult{Images: []ImageCheck{}}
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	files := make([][]string, len(names))
	for i, n := range names {
		c := ImageCheck{Name: n}
		if files[i], err = checkImage(r, n); err != nil {
			c.Error = err.Error()
		}
		res.Images = append(res.Images, c)
	}
	unlock()
	if res.Repository, err = r.Fsck(ctx); err != nil {
		return nil, err
	}
	// An image whose composefs image or layer streams the repository
	// check found damaged (a bad object) is damaged too.
	for _, p := range res.Repository.Problems {
		for i, c := range res.Images {
			if c.Error == "" && slices.Contains(files[i], p.Path) {
				res.Images[i].Error = fmt.Sprintf("oci: %s: %s (%s)", p.Path, p.Detail, p.Kind)
			}
		}
	}
	return res, nil
}

// checkImage checks one OCI image (see Fsck), and returns the files the
// image is made of: its composefs image, the bootable images linked to it
// (each must be present) and its layers' streams.
func checkImage(r *repo.Repo, name string) ([]string, error) {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return nil, err
	}
	files := []string{"images/" + rec.Image}
	for _, l := range rec.Layers {
		files = append(files, "streams/"+LayerStreamName(l.DiffID))
	}
	for _, key := range slices.Sorted(maps.Keys(rec.BootImages)) {
		h := rec.BootImages[key]
		files = append(files, "images/"+h)
		if _, err := r.Resolve(h); err != nil {
			return files, fmt.Errorf("oci: %s: boot image %s (%s): %w", name, h, key, err)
		}
	}
	if _, err := recordImage(r, rec); err != nil {
		return files, fmt.Errorf("oci: %s: %w", name, err)
	}
	return files, nil
}
