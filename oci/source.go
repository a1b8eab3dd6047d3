package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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

// source is an image to pull and how to read its layers.
type source struct {
	kind string
	img  v1.Image
	// name is the name the image gets when the caller gives none ("" if
	// the source has none to offer).
	name string
	// uncompressed: read layers with Uncompressed() (a docker archive
	// usually holds uncompressed layers; asking for them compressed would
	// compress them on the fly).
	uncompressed bool
	// verifyBlobs: check each compressed blob against its digest (the
	// registry client does it by itself).
	verifyBlobs bool
}

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

// splitPathTag splits PATH[:TAG], where PATH may itself contain colons: if
// the whole string names an existing file, there is no tag.
func splitPathTag(s string) (string, string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func openSource(ctx context.Context, s string, opts *PullOptions) (*source, error) {
	kind, rest := ParseSource(s)
	plat, err := opts.platform()
	if err != nil {
		return nil, err
	}
	switch kind {
	case SourceLayout:
		return openLayout(rest, plat)
	case SourceArchive:
		return openArchive(rest)
	}
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(rest, nopts...)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(plat)}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}
	img, err := remote.Image(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("oci: %s: %w", rest, err)
	}
	return &source{kind: SourceRegistry, img: img, name: ref.Name()}, nil
}

func openLayout(s string, plat v1.Platform) (*source, error) {
	dir, tag := splitPathTag(s)
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if tag == "" || d.Annotations[refNameAnnotation] == tag {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && tag != "":
		return nil, fmt.Errorf("oci: OCI layout %s has no image tagged %q", dir, tag)
	case len(found) == 0:
		return nil, fmt.Errorf("oci: OCI layout %s has no image", dir)
	case len(found) > 1:
		return nil, fmt.Errorf("oci: OCI layout %s has %d images: say which (oci:%s:TAG)", dir, len(found), dir)
	}
	img, err := imageFromDescriptor(idx, found[0], plat)
	if err != nil {
		return nil, fmt.Errorf("oci: OCI layout %s: %w", dir, err)
	}
	return &source{kind: SourceLayout, img: img, name: tag, verifyBlobs: true}, nil
}

// imageFromDescriptor returns the image a descriptor of an index names,
// picking the platform's from a nested index.
func imageFromDescriptor(idx v1.ImageIndex, d v1.Descriptor, plat v1.Platform) (v1.Image, error) {
	for depth := 0; depth < 4; depth++ {
		if !d.MediaType.IsIndex() {
			if d.MediaType.IsImage() || d.MediaType == "" {
				return idx.Image(d.Digest)
			}
			return nil, fmt.Errorf("%s is a %s, not an image", d.Digest, d.MediaType)
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		m, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		var pick *v1.Descriptor
		for i, c := range m.Manifests {
			if c.Platform != nil && c.Platform.Satisfies(plat) {
				pick = &m.Manifests[i]
				break
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("index %s has no image for %s", d.Digest, plat.String())
		}
		idx, d = child, *pick
	}
	return nil, errors.New("indexes nested too deep")
}

func openArchive(s string) (*source, error) {
	file, tagStr := splitPathTag(s)
	var tag *name.Tag
	nm := tagStr
	if tagStr != "" {
		t, err := name.NewTag(tagStr)
		if err != nil {
			return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
		}
		tag = &t
	} else {
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
		if err != nil {
			return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
		}
		if len(m) == 1 && len(m[0].RepoTags) == 1 {
			nm = m[0].RepoTags[0]
		}
	}
	img, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
	}
	return &source{kind: SourceArchive, img: img, name: nm, uncompressed: true}, nil
}
