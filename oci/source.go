package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source kinds, as the prefix of a source string says.
const (
	// SourceRegistry is a registry reference ("docker://" optional):
	// "registry.example/repo:tag", "repo@sha256:…".
	SourceRegistry = "registry"
	// SourceLayout is an OCI image layout directory: "oci:DIR[:TAG]".
	SourceLayout = "oci"
	// SourceArchive is a docker-save archive: "docker-archive:FILE[:REF]".
	SourceArchive = "docker-archive"
)

// refNameAnnotation names an image in an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// maxIndexDepth bounds the indexes nested in indexes a pull follows.
const maxIndexDepth = 4

// source is an image to pull: its manifest and configuration, read and
// checked against the digests that name them, and the means to read its
// layers.
type source struct {
	kind string
	// name is the name the image gets when the caller gives none ("" if
	// the source has none to offer).
	name string

	manifest       []byte // as the source has it, byte for byte
	manifestDigest v1.Hash
	mediaType      types.MediaType
	config         []byte
	configDigest   v1.Hash
	layers         []v1.Descriptor // the manifest's
	diffIDs        []v1.Hash       // the configuration's, one per layer

	// openLayer opens the blob of layer i of a local source (a layout's
	// file, an archive's member); the import checks it against its
	// descriptor as it reads it.
	openLayer func(i int) (io.ReadCloser, error)
	// fetchLayer fetches the blob of layer i from a registry into w,
	// checked against its descriptor as it comes (nil for local sources).
	fetchLayer func(ctx context.Context, i int, w blobSink, progress func(int64)) error
	// fetchRanges fetches the ranges rs of layer i's blob from a registry
	// into w, at their offsets, and returns the bytes received (nil for
	// local sources).
	fetchRanges func(ctx context.Context, i int, rs []byteRange, w io.WriterAt) (int64, error)
	close       func() error
}

// getter returns the content a descriptor names, checked against it.
type getter func(ctx context.Context, what string, d v1.Descriptor) ([]byte, error)

// platform returns the platform to pick from an index.
func (o *PullOptions) platform() (v1.Platform, error) {
	if o.Platform == "" {
		p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if runtime.GOARCH == "arm" {
			p.Variant = "v7"
		}
		return p, nil
	}
	p, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("oci: platform %q: %w", o.Platform, err)
	}
	return *p, nil
}

// ParseSource says what kind of source s names, and returns the rest of it
// (for a registry, the reference; for a layout, DIR[:TAG]; for an archive,
// FILE[:REF]).
func ParseSource(s string) (kind, rest string) {
	switch {
	case strings.HasPrefix(s, "oci:"):
		return SourceLayout, s[len("oci:"):]
	case strings.HasPrefix(s, "docker-archive:"):
		return SourceArchive, s[len("docker-archive:"):]
	case strings.HasPrefix(s, "docker://"):
		return SourceRegistry, s[len("docker://"):]
	}
	return SourceRegistry, s
}

// SplitPathRef splits the PATH[:REF] of an "oci:" layout or a
// "docker-archive:" file, where both may hold colons (REF is often
// NAME:TAG): a whole string that exists is a path without REF; else PATH
// is the longest part before a colon that exists; else, for a path still
// to be made, the part before the first colon (as containers/image reads
// these names).
func SplitPathRef(s string) (path, ref string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := strings.LastIndexByte(s, ':'); i > 0; i = strings.LastIndexByte(s[:i], ':') {
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	if p, r, ok := strings.Cut(s, ":"); ok && p != "" {
		return p, r
	}
	return s, ""
}

// openSource reads the image src names, up to its layers: the manifest
// (through indexes, to the platform's) and the configuration, each checked
// against the digest that names it.
func openSource(ctx context.Context, src string, opts *PullOptions) (*source, error) {
	kind, rest := ParseSource(src)
	plat, err := opts.platform()
	if err != nil {
		return nil, err
	}
	switch kind {
	case SourceLayout:
		return openLayout(ctx, rest, plat)
	case SourceArchive:
		return openArchive(rest)
	}
	return openRegistry(ctx, rest, plat, opts)
}

func openRegistry(ctx context.Context, rest string, plat v1.Platform, opts *PullOptions) (*source, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(rest, nopts...)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	c, err := newRegistryClient(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	root := v1.Descriptor{Size: sizeUnknown}
	if d, ok := ref.(name.Digest); ok {
		if root.Digest, err = v1.NewHash(d.DigestStr()); err != nil {
			return nil, fmt.Errorf("oci: %s: %w", rest, err)
		}
	}
	data, mt, err := c.manifest(ctx, "manifest", root)
	if err != nil {
		return nil, fmt.Errorf("oci: %s: %w", rest, err)
	}
	if root.Digest.Algorithm == "" {
		if root.Digest, _, err = v1.SHA256(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	root.MediaType = mt
	getManifest := func(ctx context.Context, what string, d v1.Descriptor) ([]byte, error) {
		data, _, err := c.manifest(ctx, what, d)
		return data, err
	}
	getBlob := func(ctx context.Context, what string, d v1.Descriptor) ([]byte, error) {
		if d.Size > maxMetadataSize {
			return nil, fmt.Errorf("%w: %s %s is %d bytes, more than the %d a pull reads", ErrTooLarge, what, d.Digest, d.Size, maxMetadataSize)
		}
		var buf bytes.Buffer
		err := c.blob(ctx, what, d, bufferSink{&buf}, nil)
		return buf.Bytes(), err
	}
	s := &source{kind: SourceRegistry, name: ref.Name(), close: func() error { return nil }}
	if err := s.load(ctx, getManifest, getBlob, root, data, plat); err != nil {
		return nil, fmt.Errorf("oci: %s: %w", rest, err)
	}
	s.fetchLayer = func(ctx context.Context, i int, w blobSink, progress func(int64)) error {
		return c.blob(ctx, "blob", s.layers[i], w, progress)
	}
	s.fetchRanges = func(ctx context.Context, i int, rs []byteRange, w io.WriterAt) (int64, error) {
		return c.blobRanges(ctx, "blob", s.layers[i], rs, w)
	}
	return s, nil
}

// load reads the image that the manifest or index data (named by d) leads
// to: indexes are followed to the image for plat, and the image's
// configuration is read.
func (s *source) load(ctx context.Context, getManifest, getBlob getter, d v1.Descriptor, data []byte, plat v1.Platform) error {
	d, data, err := resolveImage(ctx, getManifest, d, data, plat)
	if err != nil {
		return err
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("oci: manifest %s: %w", d.Digest, err)
	}
	config, err := getBlob(ctx, "configuration", m.Config)
	if err != nil {
		return err
	}
	return s.setImage(data, d, m, config)
}

// setImage sets the image's manifest (named by d) and configuration, which
// must list as many diff IDs as the manifest lists layers.
func (s *source) setImage(manifest []byte, d v1.Descriptor, m *v1.Manifest, config []byte) error {
	cf, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return fmt.Errorf("oci: configuration %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("oci: the manifest lists %d layers, the configuration %d diff IDs", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, id := range cf.RootFS.DiffIDs {
		if id.Algorithm != "sha256" || len(id.Hex) != 64 {
			return fmt.Errorf("oci: layer %d: diff ID %s is not a sha256 digest", i, id)
		}
	}
	s.manifest, s.manifestDigest, s.mediaType = manifest, d.Digest, d.MediaType
	s.config, s.configDigest = config, m.Config.Digest
	s.layers, s.diffIDs = m.Layers, cf.RootFS.DiffIDs
	return nil
}

// resolveImage follows indexes, from data (named by d), to the image
// manifest for plat, each fetched and checked by get. It returns the
// manifest and its descriptor, whose media type is set.
func resolveImage(ctx context.Context, get getter, d v1.Descriptor, data []byte, plat v1.Platform) (v1.Descriptor, []byte, error) {
	for depth := 0; ; depth++ {
		mt, err := manifestKind(data, d.MediaType)
		if err != nil {
			return d, nil, fmt.Errorf("oci: %s: %w", d.Digest, err)
		}
		d.MediaType = mt
		if !mt.IsIndex() {
			return d, data, nil
		}
		if depth == maxIndexDepth {
			return d, nil, fmt.Errorf("oci: indexes nested more than %d deep", maxIndexDepth)
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(data))
		if err != nil {
			return d, nil, fmt.Errorf("oci: index %s: %w", d.Digest, err)
		}
		pick, err := pickPlatform(idx, plat)
		if err != nil {
			return d, nil, fmt.Errorf("oci: index %s: %w", d.Digest, err)
		}
		if data, err = get(ctx, whatManifest(pick), pick); err != nil {
			return d, nil, err
		}
		d = pick
	}
}

// whatManifest names what a descriptor of an index points at, for errors.
func whatManifest(d v1.Descriptor) string {
	if d.MediaType.IsIndex() {
		return "index"
	}
	return "manifest"
}

// pickPlatform returns the first descriptor of an index for plat.
func pickPlatform(idx *v1.IndexManifest, plat v1.Platform) (v1.Descriptor, error) {
	for _, c := range idx.Manifests {
		if c.Platform != nil && c.Platform.Satisfies(plat) {
			return c, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s", plat.String())
}

// manifestKind returns the media type of a manifest or index: the one its
// content gives, else the one declared (by its descriptor or the
// registry), else the OCI type its fields show. Content and declaration
// must agree on whether it is an index; anything but an image manifest or
// an index is refused.
func manifestKind(data []byte, declared types.MediaType) (types.MediaType, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	if probe.SchemaVersion == 1 {
		return "", fmt.Errorf("a Docker schema 1 manifest (not supported)")
	}
	mt := probe.MediaType
	switch {
	case mt != "" && declared != "" && (declared.IsIndex() || declared.IsImage()) && mt.IsIndex() != declared.IsIndex():
		return "", fmt.Errorf("declared a %s, its content says %s", declared, mt)
	case mt == "" && (declared.IsIndex() || declared.IsImage()):
		mt = declared
	case mt == "" && probe.Manifests != nil:
		mt = types.OCIImageIndex
	case mt == "":
		mt = types.OCIManifestSchema1
	}
	if !mt.IsIndex() && !mt.IsImage() {
		return "", fmt.Errorf("a %s, not an image", mt)
	}
	if mt.IsIndex() != (probe.Manifests != nil) {
		return "", fmt.Errorf("a %s whose fields say otherwise", mt)
	}
	return mt, nil
}
