package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
)

// The names composefs-rs gives an image's streams and named references.
const (
	// configStreamPrefix and manifestStreamPrefix start the names of the
	// configuration's and the manifest's split streams (composefs-oci's
	// config_identifier, crates/composefs-oci/src/lib.rs, and
	// manifest_identifier, oci_image.rs: "oci-config-" / "oci-manifest-"
	// + the OCI digest).
	configStreamPrefix   = "oci-config-"
	manifestStreamPrefix = "oci-manifest-"
	// imageRefKeyV1 is the configuration stream's named reference to the
	// V1 EROFS image of its layers, which keeps the image alive
	// (IMAGE_REF_KEY_V1, crates/composefs-oci/src/lib.rs).
	imageRefKeyV1 = "composefs.image.v1"
	// configRefKeyPrefix starts the manifest stream's named reference to
	// the configuration's stream ("config:" + digest; write_manifest,
	// oci_image.rs).
	configRefKeyPrefix = "config:"
	// maxJSON bounds a stored manifest or configuration read back.
	maxJSON = 16 << 20
)

// ManifestStreamName returns the name under streams/ of the split stream of
// the manifest with the given digest ("sha256:HEX").
func ManifestStreamName(d string) string { return manifestStreamPrefix + d }

// ConfigStreamName returns the name under streams/ of the split stream of
// the configuration with the given digest ("sha256:HEX").
func ConfigStreamName(d string) string { return configStreamPrefix + d }

// encodeTag encodes an image name as one path component, as composefs-rs's
// encode_tag (oci_image.rs): "%" becomes "%25", "/" becomes "%2F".
func encodeTag(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "%", "%25"), "/", "%2F")
}

// decodeTag undoes encodeTag in one pass, as composefs-rs's decode_tag: any
// other "%XX" is kept as it is.
func decodeTag(enc string) string {
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if enc[i] == '%' && i+3 <= len(enc) {
			switch enc[i+1 : i+3] {
			case "2F":
				b.WriteByte('/')
				i += 2
				continue
			case "25":
				b.WriteByte('%')
				i += 2
				continue
			}
		}
		b.WriteByte(enc[i])
	}
	return b.String()
}

// tagRef returns the stream reference of the image called name:
// oci/ENCODED, under streams/refs/ (oci_ref_path, oci_image.rs).
func tagRef(name string) string { return refPrefix + encodeTag(name) }

// writeImageStreams stores the source's configuration and manifest as
// composefs-rs stores them: each as an object, held by a split stream of
// its content type ("ociconfg", "ocimanif") whose only chunk is that
// object; the configuration stream names each layer's stream by diff ID
// and the EROFS image (composefs.image.v1), then the bootable images the
// configuration's stream stored already links (composefs.image.boot…,
// kept as composefs-rs keeps them), the manifest stream names the
// configuration's stream (config:DIGEST) and the layers' streams. With a
// name, streams/refs/oci/ENCODED(name) points at the manifest's stream.
func writeImageStreams(tx *repo.Tx, s *source, layers [][]byte, img digest.Digest, name string) (manifest, config digest.Digest, err error) {
	alg := tx.Repo().Algorithm()
	// The named references in composefs-rs's order, which fixes the order
	// of the stream refs and so the streams' bytes: the configuration's
	// diff IDs in its order, then composefs.image.v1 (lib.rs
	// write_config_raw); the manifest's config:DIGEST, then the diff IDs
	// (oci_image.rs write_manifest). (A map's order made every pull write
	// new streams, leaving the last ones' to gc.)
	layerRefs := make([]namedRef, len(layers))
	for i, id := range s.diffIDs {
		layerRefs[i] = namedRef{id.String(), objectDigest(alg, layers[i])}
	}
	crefs := append(slices.Clone(layerRefs), namedRef{imageRefKeyV1, img})
	crefs = append(crefs, existingBootRefs(tx.Repo(), s.configDigest.String())...)
	cobj, cstream, err := putJSONStream(tx, rsss.ContentTypeOCIConfig, s.config, crefs, ConfigStreamName(s.configDigest.String()))
	if err != nil {
		return digest.Digest{}, digest.Digest{}, err
	}
	mrefs := append([]namedRef{{configRefKeyPrefix + s.configDigest.String(), cstream}}, layerRefs...)
	mobj, _, err := putJSONStream(tx, rsss.ContentTypeOCIManifest, s.manifest, mrefs, ManifestStreamName(s.manifestDigest.String()))
	if err != nil {
		return digest.Digest{}, digest.Digest{}, err
	}
	if name != "" {
		if err := tx.SetStreamRef(tagRef(name), ManifestStreamName(s.manifestDigest.String())); err != nil {
			return digest.Digest{}, digest.Digest{}, err
		}
	}
	return mobj, cobj, nil
}

// existingBootRefs returns the boot image references (composefs.image.boot…)
// of the configuration stream already stored for the configuration of
// digest cd, sorted by name, so that pulling an image again keeps the
// bootable images linked to it, as composefs-rs's
// ensure_oci_composefs_erofs keeps boot_image_refs. A configuration stream
// that is missing or can't be read has none.
func existingBootRefs(r *repo.Repo, cd string) []namedRef {
	d, err := r.ResolveStream(ConfigStreamName(cd))
	if err != nil {
		return nil
	}
	_, _, named, err := readJSONStream(r, d, rsss.ContentTypeOCIConfig, cd)
	if err != nil {
		return nil
	}
	var refs []namedRef
	for _, k := range slices.Sorted(maps.Keys(named)) {
		if strings.HasPrefix(k, bootRefKeyPrefix) {
			refs = append(refs, namedRef{k, named[k]})
		}
	}
	return refs
}

// namedRef is a named reference of a split stream.
type namedRef struct {
	name string
	d    digest.Digest
}

// putJSONStream stores data as an object and a split stream of type ct
// holding it (write_external), with the named references named, added in
// their order.
func putJSONStream(tx *repo.Tx, ct rsss.ContentType, data []byte, named []namedRef, stream string) (obj, sd digest.Digest, err error) {
	if obj, err = tx.Objects().Put(data); err != nil {
		return obj, sd, err
	}
	w, err := rsss.NewWriter(tx.Repo().Algorithm(), ct)
	if err != nil {
		return obj, sd, err
	}
	for _, ref := range named {
		if err := w.AddNamedStreamRef(ref.name, ref.d); err != nil {
			return obj, sd, err
		}
	}
	if err := w.WriteExternal(obj, uint64(len(data))); err != nil {
		return obj, sd, err
	}
	sd, err = tx.PutStream(stream, w)
	return obj, sd, err
}

// readJSONStream reads the split stream object d of type ct: its content,
// whose SHA-256 must be want ("sha256:HEX"), the object holding it and
// the stream's named references.
func readJSONStream(r *repo.Repo, d digest.Digest, ct rsss.ContentType, want string) ([]byte, digest.Digest, map[string]digest.Digest, error) {
	f, err := r.OpenObject(d)
	if err != nil {
		return nil, digest.Digest{}, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, digest.Digest{}, nil, fmt.Errorf("oci: split stream %s: %w", d, err)
	}
	ss, err := rsss.NewReader(f, st.Size(), rsss.WithAlgorithm(r.Algorithm()), rsss.WithContentType(ct))
	if err != nil {
		return nil, digest.Digest{}, nil, fmt.Errorf("oci: split stream %s: %w", d, err)
	}
	defer ss.Close()
	objs := ss.ObjectRefs()
	if len(objs) != 1 || ss.StreamSize() > maxJSON {
		return nil, digest.Digest{}, nil, fmt.Errorf("oci: split stream %s (%s): %d objects of %d bytes, want one JSON document", d, ct, len(objs), ss.StreamSize())
	}
	var buf bytes.Buffer
	if _, err := ss.Reassemble(&buf, func(o digest.Digest) (io.ReadCloser, error) { return r.OpenObject(o) }); err != nil {
		return nil, digest.Digest{}, nil, fmt.Errorf("oci: split stream %s: %w", d, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		return nil, digest.Digest{}, nil, fmt.Errorf("oci: split stream %s holds a document of digest %s, not %s", d, got, want)
	}
	named := make(map[string]digest.Digest)
	for _, nr := range ss.NamedRefs() {
		named[nr.Name] = nr.Digest
	}
	return buf.Bytes(), objs[0], named, nil
}

// readImageStreams reads the record of the image whose manifest's split
// stream is streams/STREAM (oci-manifest-DIGEST), object d, from it and
// its configuration's stream, checking each document against its digest.
func readImageStreams(r *repo.Repo, stream string, d digest.Digest) (*ImageRecord, error) {
	mdigest := strings.TrimPrefix(stream, manifestStreamPrefix)
	raw, mobj, mnamed, err := readJSONStream(r, d, rsss.ContentTypeOCIManifest, mdigest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("oci: manifest %s: %w", mdigest, err)
	}
	mt, err := manifestKind(raw, m.MediaType)
	if err != nil || !mt.IsImage() {
		return nil, fmt.Errorf("oci: manifest %s: not an image manifest (%v)", mdigest, err)
	}
	cd, ok := mnamed[configRefKeyPrefix+m.Config.Digest.String()]
	if !ok {
		return nil, fmt.Errorf("oci: manifest stream %s names no configuration stream %s%s", stream, configRefKeyPrefix, m.Config.Digest)
	}
	rawc, cobj, cnamed, err := readJSONStream(r, cd, rsss.ContentTypeOCIConfig, m.Config.Digest.String())
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawc))
	if err != nil {
		return nil, fmt.Errorf("oci: configuration %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("oci: image %s: the manifest lists %d layers, the configuration %d diff IDs", mdigest, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	img, ok := cnamed[imageRefKeyV1]
	if !ok {
		return nil, fmt.Errorf("oci: configuration stream of %s names no composefs image (%s)", mdigest, imageRefKeyV1)
	}
	rec := &ImageRecord{ManifestDigest: mdigest, MediaType: string(mt), Manifest: mobj.Hex(), Config: cobj.Hex(),
		ConfigDigest: m.Config.Digest.String(), Image: img.Hex(), configNamed: cnamed}
	for k, v := range cnamed {
		if strings.HasPrefix(k, bootRefKeyPrefix) {
			if rec.BootImages == nil {
				rec.BootImages = make(map[string]string)
			}
			rec.BootImages[k] = v.Hex()
		}
	}
	for i, l := range m.Layers {
		id := cf.RootFS.DiffIDs[i].String()
		ls, ok := cnamed[id]
		if !ok {
			return nil, fmt.Errorf("oci: configuration stream of %s names no layer stream for %s", mdigest, id)
		}
		rec.Layers = append(rec.Layers, LayerRecord{Digest: l.Digest.String(), Size: l.Size, MediaType: string(l.MediaType), DiffID: id, Stream: ls.Hex()})
	}
	return rec, nil
}

// findTag returns the stream reference of the image called name and the
// stream it points at: composefs-rs's oci/ENCODED, else the nested
// oci/NAME earlier gocfs wrote.
func findTag(r *repo.Repo, name string) (ref, stream string, d digest.Digest, err error) {
	if err := repo.CheckRefName(name); err != nil {
		return "", "", digest.Digest{}, err
	}
	for _, ref := range []string{tagRef(name), refPrefix + name} {
		stream, d, err := r.ResolveStreamRef(ref)
		if errors.Is(err, repo.ErrNotFound) && stream == "" {
			continue
		}
		if err != nil {
			return "", "", digest.Digest{}, fmt.Errorf("oci: OCI image %s: %w", name, err)
		}
		return ref, stream, d, nil
	}
	return "", "", digest.Digest{}, fmt.Errorf("%w: no OCI image %s", repo.ErrNotFound, name)
}
