package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// openLayout reads the image an OCI image layout's index.json names
// (DIR[:TAG]). index.json is where trust starts; every blob it leads to is
// checked against the descriptor that names it.
func openLayout(ctx context.Context, s string, plat v1.Platform) (_ *source, retErr error) {
	dir, tag := SplitPathRef(s)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			root.Close()
		}
	}()
	d, err := layoutPick(root, dir, tag)
	if err != nil {
		return nil, err
	}
	get := func(ctx context.Context, what string, d v1.Descriptor) ([]byte, error) {
		f, err := openLayoutBlob(root, what, d)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBlob(what, d, f, maxMetadataSize)
	}
	data, err := get(ctx, whatManifest(d), d)
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	src := &source{kind: SourceLayout, name: tag, close: root.Close}
	if err := src.load(ctx, get, get, d, data, plat); err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	src.openLayer = func(i int) (io.ReadCloser, error) {
		return openLayoutBlob(root, "blob", src.layers[i])
	}
	return src, nil
}

// layoutPick returns the descriptor of index.json tagged tag (with no
// tag, its only one).
func layoutPick(root *os.Root, dir, tag string) (v1.Descriptor, error) {
	f, err := openRegular(root, "index.json")
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	if len(data) > maxMetadataSize {
		return v1.Descriptor{}, fmt.Errorf("%w: OCI layout %s: index.json is more than %d bytes", ErrTooLarge, dir, maxMetadataSize)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s: index.json: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if tag == "" || d.Annotations[refNameAnnotation] == tag {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && tag != "":
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s has no image tagged %q", dir, tag)
	case len(found) == 0:
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s has no image", dir)
	case len(found) > 1:
		return v1.Descriptor{}, fmt.Errorf("oci: OCI layout %s has %d images: say which (oci:%s:TAG)", dir, len(found), dir)
	}
	return found[0], nil
}

// openLayoutBlob opens the blob a descriptor names (blobs/ALG/HEX), which
// must be a regular file: one longer than the descriptor's size is refused
// before it is read. (One shorter is refused once read, with its digest.)
func openLayoutBlob(root *os.Root, what string, d v1.Descriptor) (*os.File, error) {
	if _, err := hasherFor(what, d.Digest); err != nil {
		return nil, err
	}
	f, err := openRegular(root, path.Join("blobs", d.Digest.Algorithm, d.Digest.Hex))
	if err != nil {
		return nil, fmt.Errorf("oci: %s %s: %w", what, d.Digest, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() > d.Size {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("oci: %s %s: %w", what, d.Digest, err)
		}
		return nil, tooLong(what, d.Digest, d.Size)
	}
	return f, nil
}

// openRegular opens name in the layout, which must be a regular file. It
// opens without blocking, so that a FIFO (or a device) put in a blob's
// place is refused instead of hanging the pull.
func openRegular(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
