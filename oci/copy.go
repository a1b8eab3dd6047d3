package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/repo"
)

// CopyOptions are the options of Copy (cfsctl oci copy's).
type CopyOptions struct {
	// Name is the tag the image gets in the destination repository; by
	// default its tag in the source (an image named by "@DIGEST" needs
	// one).
	Name string
	// Zerocopy is cfsctl's --zerocopy: both repositories must use the
	// same digest algorithm. gocfs copies the objects all the same.
	Zerocopy bool
	// Pull are the options of the import (its size limit, progress).
	Pull PullOptions
}

// Copy copies the OCI image called image (a tag or "@DIGEST") from the
// repository src into r, as cfsctl oci copy does: its manifest and
// configuration, byte for byte, and its layers, each rebuilt from src's
// split stream and stored again in r's algorithm (checked against its diff
// ID as a pulled layer is), then its composefs image made and named as a
// pull names it. Layers r has already are not copied again.
func Copy(ctx context.Context, r, src *repo.Repo, image string, opts CopyOptions) (*PullResult, error) {
	if opts.Zerocopy && r.Algorithm() != src.Algorithm() {
		return nil, fmt.Errorf("oci: --zerocopy needs the same hash algorithm in both repositories: the source uses %s, the destination %s", src.Algorithm(), r.Algorithm())
	}
	name := opts.Name
	if name == "" && !strings.HasPrefix(image, "@") {
		name = image
	}
	if name == "" {
		return nil, fmt.Errorf("oci: %s names no tag: give the copy a name", image)
	}
	if err := repo.CheckRefName(name); err != nil {
		return nil, err
	}
	s, err := repositorySource(src, image)
	if err != nil {
		return nil, err
	}
	po := opts.Pull
	po.setDefaults(r)
	p := &puller{r: r, s: s, opts: &po, name: name, budget: &budget{limit: po.MaxBytes}}
	return p.run(ctx)
}

// repositorySource is the pull source of the OCI image called image in the
// repository src: its stored manifest and configuration (checked against
// their digests), and its layers as their uncompressed archives, rebuilt
// from src and described by their diff IDs and sizes.
func repositorySource(src *repo.Repo, image string) (*source, error) {
	rec, err := lookupRecord(src, image)
	if err != nil {
		return nil, err
	}
	s, err := recordSource(src, rec)
	if err != nil {
		return nil, err
	}
	// The source has the layers uncompressed, named by diff ID: they
	// are what is read and checked.
	s.layers = make([]v1.Descriptor, len(s.diffIDs))
	for i, id := range s.diffIDs {
		var n countWriter
		n.w = io.Discard
		if err := WriteLayer(src, id.String(), &n); err != nil {
			return nil, fmt.Errorf("oci: source layer %d (%s): %w", i, id, err)
		}
		s.layers[i] = v1.Descriptor{Digest: id, Size: int64(n.n), MediaType: types.OCIUncompressedLayer}
	}
	s.openLayer = func(i int) (io.ReadCloser, error) {
		if i < 0 || i >= len(s.diffIDs) {
			return nil, errors.New("oci: no such layer")
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(WriteLayer(src, s.diffIDs[i].String(), pw)) }()
		return pr, nil
	}
	return s, nil
}
