package oci

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dockerLayerZstd is the Docker media type of a zstd layer.
const dockerLayerZstd types.MediaType = "application/vnd.docker.image.rootfs.diff.tar.zstd"

// archive is a docker save archive: an uncompressed tar file whose members
// are found by name and read where they lie.
type archive struct {
	f       *os.File
	file    string
	members map[string]archiveMember
}

// archiveMember is where a member's content lies, or what it links to.
type archiveMember struct {
	off, size int64
	link      string // a symbolic or hard link's target, as a cleaned archive path
}

// posReader tracks the offset in the file under the tar reader.
type posReader struct {
	f   *os.File
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// archivePath cleans a member name ("./x", "/x" and "x" are one).
func archivePath(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }

// indexArchive lists the members of a docker save archive.
func indexArchive(file string) (*archive, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
	}
	a := &archive{f: f, file: file, members: make(map[string]archiveMember)}
	pr := &posReader{f: f}
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
		}
		p := archivePath(hdr.Name)
		switch {
		case isSparse(hdr):
			continue // not what docker writes; its data is not its content
		case hdr.Typeflag == tar.TypeReg:
			a.members[p] = archiveMember{off: pr.pos, size: hdr.Size}
		case hdr.Typeflag == tar.TypeSymlink:
			a.members[p] = archiveMember{link: archivePath(path.Join(path.Dir(p), hdr.Linkname))}
		case hdr.Typeflag == tar.TypeLink:
			a.members[p] = archiveMember{link: archivePath(hdr.Linkname)}
		}
	}
}

// open returns the content of the member called p, following links.
func (a *archive) open(p string) (*io.SectionReader, error) {
	p = archivePath(p)
	for range 8 {
		m, ok := a.members[p]
		if !ok {
			return nil, fmt.Errorf("oci: docker archive %s has no file %s", a.file, p)
		}
		if m.link == "" {
			return io.NewSectionReader(a.f, m.off, m.size), nil
		}
		p = m.link
	}
	return nil, fmt.Errorf("oci: docker archive %s: too many links to %s", a.file, p)
}

// archiveImage is an image of a docker save archive's manifest.json.
type archiveImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// nameDigest returns the digest a member's name gives, if any:
// blobs/ALG/HEX (docker 25 and later), or HEX or sha256:HEX with an
// extension (HEX.json, sha256:HEX, HEX.tar.gz …).
func nameDigest(p string) (v1.Hash, bool) {
	p = archivePath(p)
	base, dir := path.Base(p), path.Dir(p)
	if path.Base(path.Dir(dir)) == "blobs" && path.Dir(path.Dir(dir)) == "." {
		h, err := v1.NewHash(path.Base(dir) + ":" + base)
		return h, err == nil
	}
	base = strings.TrimPrefix(base, "sha256:")
	for _, ext := range []string{".json", ".tar.gz", ".tar.zst", ".tgz", ".tar"} {
		base = strings.TrimSuffix(base, ext)
	}
	h, err := v1.NewHash("sha256:" + base)
	return h, err == nil
}

// openArchive reads the image of a docker save archive (FILE[:REF]). The
// archive has no manifest of its own: the one recorded is made here
// (Docker schema 2), with each layer's blob as the archive holds it. The
// configuration must have the digest its file name gives; a layer whose
// file name gives a digest must have it, and every layer must unpack to
// the configuration's diff ID.
func openArchive(s string) (_ *source, retErr error) {
	file, tagStr := SplitPathRef(s)
	a, err := indexArchive(file)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			a.f.Close()
		}
	}()
	img, nm, err := a.pickImage(tagStr)
	if err != nil {
		return nil, err
	}
	config, cdesc, err := a.config(img.Config)
	if err != nil {
		return nil, err
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(config, &cf); err != nil {
		return nil, fmt.Errorf("oci: docker archive %s: configuration %s: %w", file, img.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(img.Layers) {
		return nil, fmt.Errorf("oci: docker archive %s: manifest.json lists %d layers, the configuration %d diff IDs", file, len(img.Layers), len(cf.RootFS.DiffIDs))
	}
	m := &v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2, Config: cdesc}
	for i, p := range img.Layers {
		d, err := a.layerDescriptor(p, cf.RootFS.DiffIDs[i])
		if err != nil {
			return nil, fmt.Errorf("oci: docker archive %s: layer %d (%s): %w", file, i, p, err)
		}
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mdigest, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	src := &source{kind: SourceArchive, name: nm, close: a.f.Close}
	md := v1.Descriptor{Digest: mdigest, Size: int64(len(raw)), MediaType: m.MediaType}
	if err := src.setImage(raw, md, m, config); err != nil {
		return nil, fmt.Errorf("oci: docker archive %s: %w", file, err)
	}
	src.openLayer = func(i int) (io.ReadCloser, error) {
		sr, err := a.open(img.Layers[i])
		return io.NopCloser(sr), err
	}
	return src, nil
}

// pickImage returns the image of manifest.json tagged tagStr (with no tag,
// its only one), and the name it offers.
func (a *archive) pickImage(tagStr string) (*archiveImage, string, error) {
	sr, err := a.open("manifest.json")
	if err != nil {
		return nil, "", err
	}
	if sr.Size() > maxMetadataSize {
		return nil, "", fmt.Errorf("%w: docker archive %s: manifest.json is more than %d bytes", ErrTooLarge, a.file, maxMetadataSize)
	}
	var imgs []archiveImage
	if err := json.NewDecoder(sr).Decode(&imgs); err != nil {
		return nil, "", fmt.Errorf("oci: docker archive %s: manifest.json: %w", a.file, err)
	}
	if tagStr == "" {
		if len(imgs) != 1 {
			return nil, "", fmt.Errorf("oci: docker archive %s has %d images: say which (docker-archive:%s:REF)", a.file, len(imgs), a.file)
		}
		nm := ""
		if len(imgs[0].RepoTags) == 1 {
			nm = imgs[0].RepoTags[0]
		}
		return &imgs[0], nm, nil
	}
	tag, err := name.NewTag(tagStr)
	if err != nil {
		return nil, "", fmt.Errorf("oci: docker archive %s: %w", a.file, err)
	}
	for i := range imgs {
		for _, t := range imgs[i].RepoTags {
			if rt, err := name.NewTag(t); err == nil && rt.Name() == tag.Name() {
				return &imgs[i], tagStr, nil
			}
		}
	}
	return nil, "", fmt.Errorf("oci: docker archive %s has no image tagged %s", a.file, tagStr)
}

// config reads the configuration file p, checked against the digest its
// name gives, and returns it with its descriptor.
func (a *archive) config(p string) ([]byte, v1.Descriptor, error) {
	sr, err := a.open(p)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	d := v1.Descriptor{MediaType: types.DockerConfigJSON, Size: sr.Size()}
	what := "configuration " + p
	h, named := nameDigest(p)
	if !named {
		// Nothing names it but manifest.json, where trust starts.
		if d.Digest, _, err = v1.SHA256(io.NewSectionReader(sr, 0, sr.Size())); err != nil {
			return nil, d, fmt.Errorf("oci: docker archive %s: %w", a.file, err)
		}
	} else {
		d.Digest = h
	}
	data, err := readBlob(what, d, sr, maxMetadataSize)
	if err != nil {
		return nil, d, fmt.Errorf("oci: docker archive %s: %w", a.file, err)
	}
	return data, d, nil
}

// layerDescriptor returns the descriptor of the layer file p, whose
// uncompressed content must have diffID. Its digest is the one its name
// gives; else, for an uncompressed layer, the diff ID; else the blob's
// SHA-256, computed here.
func (a *archive) layerDescriptor(p string, diffID v1.Hash) (v1.Descriptor, error) {
	sr, err := a.open(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var magic [4]byte
	k, err := sr.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return v1.Descriptor{}, err
	}
	d := v1.Descriptor{Size: sr.Size(), MediaType: types.DockerUncompressedLayer}
	switch {
	case k >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		d.MediaType = types.DockerLayer
	case k == 4 && bytes.Equal(magic[:], zstdMagic):
		d.MediaType = dockerLayerZstd
	}
	h, named := nameDigest(p)
	switch {
	case named && h != diffID:
		d.Digest = h
	case d.MediaType == types.DockerUncompressedLayer:
		d.Digest = diffID
	default:
		if d.Digest, _, err = v1.SHA256(io.NewSectionReader(sr, 0, sr.Size())); err != nil {
			return d, err
		}
	}
	return d, nil
}
