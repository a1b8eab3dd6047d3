package seal

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawImage is an image made of a manifest and its blobs in memory, as
// BuildArtifact makes them: what remote.Write pushes.
type rawImage struct {
	raw   []byte
	m     *v1.Manifest
	blobs map[string][]byte
}

var _ v1.Image = (*rawImage)(nil)

func newRawImage(manifest []byte, blobs map[string][]byte) (*rawImage, error) {
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	img := &rawImage{raw: manifest, m: m, blobs: blobs}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if _, ok := blobs[d.Digest.String()]; !ok {
			return nil, fmt.Errorf("seal: no blob %s", d.Digest)
		}
	}
	return img, nil
}

func (r *rawImage) layer(d v1.Descriptor) v1.Layer {
	return static.NewLayer(r.blobs[d.Digest.String()], d.MediaType)
}

func (r *rawImage) Layers() ([]v1.Layer, error) {
	out := make([]v1.Layer, len(r.m.Layers))
	for i, d := range r.m.Layers {
		out[i] = r.layer(d)
	}
	return out, nil
}

func (r *rawImage) MediaType() (types.MediaType, error) { return r.m.MediaType, nil }
func (r *rawImage) Size() (int64, error)                { return int64(len(r.raw)), nil }
func (r *rawImage) ConfigName() (v1.Hash, error)        { return r.m.Config.Digest, nil }
func (r *rawImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(r.blobs[r.m.Config.Digest.String()]))
}
func (r *rawImage) RawConfigFile() ([]byte, error) { return r.blobs[r.m.Config.Digest.String()], nil }
func (r *rawImage) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.raw))
	return h, err
}
func (r *rawImage) Manifest() (*v1.Manifest, error) { return r.m.DeepCopy(), nil }
func (r *rawImage) RawManifest() ([]byte, error)    { return r.raw, nil }
func (r *rawImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, d := range append([]v1.Descriptor{r.m.Config}, r.m.Layers...) {
		if d.Digest == h {
			return r.layer(d), nil
		}
	}
	return nil, fmt.Errorf("seal: no blob %s", h)
}
func (r *rawImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return r.LayerByDigest(h) }
