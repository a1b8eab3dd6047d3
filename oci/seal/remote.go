package seal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gocfs/gocfs/oci"
)

// refNameAnnotation names an image in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// maxManifestSize bounds an artifact manifest read.
const maxManifestSize = 4 << 20

// maxArtifacts bounds the composefs artifacts of one image that are read.
const maxArtifacts = 16

// Remote says how to reach registries: the same settings a pull takes.
type Remote struct {
	// Keychain gives credentials (nil: authn.DefaultKeychain).
	Keychain authn.Keychain
	// Insecure allows plain HTTP to any registry (loopback registries
	// always get it).
	Insecure bool
	// Platform picks an image from an index ("" : linux and this
	// machine's architecture).
	Platform string
}

// remoteFrom takes the registry settings of pull options.
func remoteFrom(o *oci.PullOptions) Remote {
	return Remote{Keychain: o.Keychain, Insecure: o.Insecure, Platform: o.Platform}
}

func (rm Remote) parse(ref string) (name.Reference, error) {
	var nopts []name.Option
	if rm.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return r, nil
}

func (rm Remote) options(ctx context.Context) []remote.Option {
	kc := rm.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
}

func (rm Remote) platform() (v1.Platform, error) {
	if rm.Platform == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(rm.Platform)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("seal: platform %q: %w", rm.Platform, err)
	}
	return *p, nil
}

// Resolve returns the digest of the image manifest ref names for the
// platform (following an index), without pulling the image.
func (rm Remote) Resolve(ctx context.Context, ref string) (name.Digest, error) {
	r, err := rm.parse(ref)
	if err != nil {
		return name.Digest{}, err
	}
	plat, err := rm.platform()
	if err != nil {
		return name.Digest{}, err
	}
	img, err := remote.Image(r, append(rm.options(ctx), remote.WithPlatform(plat))...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("seal: %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("seal: %s: %w", ref, err)
	}
	return r.Context().Digest(h.String()), nil
}

// FetchArtifacts lists the composefs artifacts that refer to the image
// manifest subject (the OCI referrers API, or the referrers tag schema's
// "sha256-HEX" tag where the registry lacks it) and reads each: its
// manifest and signature blobs, each checked against the digest that
// names it. Artifacts that do not parse are left out; their errors are
// returned beside the ones that do.
func (rm Remote) FetchArtifacts(ctx context.Context, subject name.Digest) ([]*FetchedArtifact, []error, error) {
	opts := append(rm.options(ctx), remote.WithFilter("artifactType", ArtifactType))
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("seal: referrers of %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("seal: referrers of %s: %w", subject, err)
	}
	var arts []*FetchedArtifact
	var bad []error
	for _, d := range im.Manifests {
		if d.ArtifactType != ArtifactType {
			continue
		}
		if len(arts)+len(bad) == maxArtifacts {
			bad = append(bad, fmt.Errorf("seal: more than %d composefs artifacts refer to %s; the others are not read", maxArtifacts, subject.DigestStr()))
			break
		}
		a, err := rm.fetchArtifact(ctx, subject, d)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		arts = append(arts, a)
	}
	return arts, bad, nil
}

// fetchArtifact reads one artifact and its signature blobs.
func (rm Remote) fetchArtifact(ctx context.Context, subject name.Digest, d v1.Descriptor) (*FetchedArtifact, error) {
	if d.Size > maxManifestSize {
		return nil, fmt.Errorf("%w: artifact %s: %d bytes", ErrMalformed, d.Digest, d.Size)
	}
	desc, err := remote.Get(subject.Context().Digest(d.Digest.String()), rm.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("seal: artifact %s: %w", d.Digest, err)
	}
	if err := checkBytes("artifact manifest", d.Digest.String(), desc.Manifest); err != nil {
		return nil, err
	}
	p, err := ParseArtifact(desc.Manifest, subject.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", d.Digest, err)
	}
	ref := &oci.Referrer{Digest: d.Digest.String(), Manifest: desc.Manifest, Blobs: map[string][]byte{EmptyConfigDigest: []byte(EmptyConfig)}}
	for _, e := range p.Entries {
		blob, err := rm.fetchBlob(ctx, subject.Context().Digest(e.Signature.Digest.String()), e.Signature)
		if err != nil {
			return nil, fmt.Errorf("seal: artifact %s: %s signature: %w", d.Digest, e.Role, err)
		}
		ref.Blobs[e.Signature.Digest.String()] = blob
	}
	return artifactFrom(ref, subject.DigestStr())
}

// fetchBlob reads a small blob, checked against its descriptor.
func (rm Remote) fetchBlob(ctx context.Context, ref name.Digest, d v1.Descriptor) ([]byte, error) {
	l, err := remote.Layer(ref, rm.options(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%w: blob %s has %d bytes, its descriptor says %d", ErrMalformed, d.Digest, len(b), d.Size)
	}
	return b, checkBytes("blob", d.Digest.String(), b)
}

// checkBytes checks data against its OCI digest ("sha256:…").
func checkBytes(what, want string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%w: %s %s has the digest %s", ErrMalformed, what, want, got)
	}
	return nil
}

// PushArtifact pushes a composefs artifact to the repository of ref,
// by digest, as a referrer of its subject: a registry without the
// referrers API gets the subject's "sha256-HEX" tag updated (the
// referrers tag schema). It returns the artifact manifest's digest.
func (rm Remote) PushArtifact(ctx context.Context, ref string, art *Artifact) (name.Digest, error) {
	r, err := rm.parse(ref)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := newRawImage(art.Manifest, art.Blobs)
	if err != nil {
		return name.Digest{}, err
	}
	h, _ := img.Digest()
	dst := r.Context().Digest(h.String())
	if err := remote.Write(dst, img, append(rm.options(ctx), remote.WithReferrersTagFallback(true))...); err != nil {
		return name.Digest{}, fmt.Errorf("seal: pushing the artifact to %s: %w", dst, err)
	}
	return dst, nil
}

// openImage opens the image of src (a registry reference or an OCI
// layout "oci:DIR[:TAG]") whose manifest has the digest want, looking
// through indexes for it.
func (rm Remote) openImage(ctx context.Context, src string, want v1.Hash) (v1.Image, error) {
	kind, rest := oci.ParseSource(src)
	var idx v1.ImageIndex
	switch kind {
	case oci.SourceLayout:
		dir, _ := oci.SplitPathRef(rest)
		p, err := layout.FromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", src, err)
		}
		if idx, err = p.ImageIndex(); err != nil {
			return nil, fmt.Errorf("seal: %s: %w", src, err)
		}
	case oci.SourceRegistry:
		r, err := rm.parse(rest)
		if err != nil {
			return nil, err
		}
		desc, err := remote.Get(r.Context().Digest(want.String()), rm.options(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", src, err)
		}
		return desc.Image()
	default:
		return nil, fmt.Errorf("seal: %s: sealing reads images from registries and OCI layouts only", src)
	}
	return findImage(idx, want, 0)
}

// findImage finds the image with manifest digest want in idx and the
// indexes it holds.
func findImage(idx v1.ImageIndex, want v1.Hash, depth int) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		switch {
		case d.Digest == want:
			return idx.Image(want)
		case d.MediaType.IsIndex() && depth < 4:
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := findImage(sub, want, depth+1); err == nil {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("seal: no image with manifest %s", want)
}

// WriteImage writes img to dest: a registry reference, or an OCI layout
// "oci:DIR[:TAG]" (created if missing; an image tagged TAG is replaced).
func (rm Remote) WriteImage(ctx context.Context, dest string, img v1.Image) error {
	kind, rest := oci.ParseSource(dest)
	switch kind {
	case oci.SourceRegistry:
		r, err := rm.parse(rest)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img, rm.options(ctx)...); err != nil {
			return fmt.Errorf("seal: writing %s: %w", dest, err)
		}
		return nil
	case oci.SourceLayout:
		dir, tag := oci.SplitPathRef(rest)
		p, err := layout.FromPath(dir)
		if errors.Is(err, os.ErrNotExist) {
			p, err = layout.Write(dir, empty.Index)
		}
		if err != nil {
			return fmt.Errorf("seal: %s: %w", dest, err)
		}
		var opts []layout.Option
		if tag != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tag}))
			err = p.ReplaceImage(img, match.Annotation(refNameAnnotation, tag), opts...)
		} else {
			err = p.AppendImage(img)
		}
		if err != nil {
			return fmt.Errorf("seal: writing %s: %w", dest, err)
		}
		return nil
	}
	return fmt.Errorf("seal: %s: sealed images are written to registries and OCI layouts only", dest)
}

// sealedImage is an image with another manifest: the same config and
// layers, the manifest's annotations added.
type sealedImage struct {
	v1.Image
	raw []byte
	m   *v1.Manifest
}

func (s *sealedImage) RawManifest() ([]byte, error)    { return s.raw, nil }
func (s *sealedImage) Manifest() (*v1.Manifest, error) { return s.m.DeepCopy(), nil }
func (s *sealedImage) Size() (int64, error)            { return int64(len(s.raw)), nil }
func (s *sealedImage) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(s.raw))
	return h, err
}
func (s *sealedImage) MediaType() (types.MediaType, error) { return s.m.MediaType, nil }
