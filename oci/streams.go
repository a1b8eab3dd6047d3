package oci

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
)

// Names of split streams under the repository's streams/ directory: a
// layer's is composefs-rs's (composefs-oci's layer_identifier,
// crates/composefs-oci/src/lib.rs: "oci-layer-" + diff ID), in its format;
// an image record's starts with "gocfs-" (a gocfs-ss stream composefs-rs
// does not know).
const (
	layerStreamPrefix = "oci-layer-"
	imageStreamPrefix = "gocfs-oci-image-"
	// refPrefix is where image records are named: streams/refs/oci/NAME.
	refPrefix = "oci/"
)

// LayerStreamName returns the name under streams/ of the split stream of
// the layer with the given diff ID ("sha256:HEX").
func LayerStreamName(diffID string) string { return layerStreamPrefix + diffID }

// ImageStreamName returns the name under streams/ of the record of the
// image whose manifest has the given digest ("sha256:HEX").
func ImageStreamName(manifestDigest string) string { return imageStreamPrefix + manifestDigest }

// openObject opens the object with the given digest (a split stream's
// reference).
func openObject(r *repo.Repo, d []byte) (*os.File, error) {
	return r.OpenObject(objectDigest(r.Algorithm(), d))
}

// openStream opens the split stream object with the given digest.
func openStream(r *repo.Repo, digest []byte, want splitstream.ContentType) (*splitstream.Reader, *os.File, error) {
	f, err := openObject(r, digest)
	if err != nil {
		return nil, nil, err
	}
	ss, err := splitstream.NewReader(bufioReader(f))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("oci: split stream %s: %w", fsverity.Hex(digest), err)
	}
	h := ss.Header()
	if h.ContentType != want || h.Algorithm != r.Algorithm() {
		ss.Close()
		f.Close()
		return nil, nil, fmt.Errorf("oci: split stream %s holds %s (%s), not %s", fsverity.Hex(digest), h.ContentType, h.Algorithm, want)
	}
	return ss, f, nil
}

// storeStream stores a finished split stream as an object of the
// transaction, to be named streams/NAME when it is published.
func storeStream(tx *repo.Tx, w *splitstream.Writer, sum [32]byte, name string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := w.Finish(&buf, sum); err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	d, err := tx.PutStreamBytes(name, buf.Bytes())
	if err != nil {
		return nil, err
	}
	return d.Bytes(), nil
}

// ImageRecord is what the repository keeps about an OCI image: the split
// stream named streams/gocfs-oci-image-DIGEST (and, for each name it was
// pulled as, streams/refs/oci/NAME) holds it as JSON, refers to the
// layers' split streams and keeps the manifest and configuration as
// objects.
type ImageRecord struct {
	// ManifestDigest is the digest of the image manifest ("sha256:…"),
	// MediaType its media type.
	ManifestDigest string `json:"manifest_digest"`
	MediaType      string `json:"media_type"`
	// Manifest and Config are the fs-verity digests (hex) of the objects
	// holding the manifest and the configuration, byte for byte.
	Manifest string `json:"manifest_object"`
	Config   string `json:"config_object"`
	// ConfigDigest is the configuration's digest ("sha256:…").
	ConfigDigest string `json:"config_digest"`
	// Layers are the image's layers, bottom first.
	Layers []LayerRecord `json:"layers"`
	// Image is the fs-verity digest (hex) of the composefs image of the
	// merged layers.
	Image string `json:"image"`
	// BootImages are the configuration stream's named references to the
	// bootable variants of the image (composefs.image.boot.v1 and the
	// like; pull --bootable), by name, as fs-verity digests (hex).
	BootImages map[string]string `json:"boot_images,omitempty"`
	// configNamed are all the configuration stream's named references,
	// for rewriting it (nil for a record of earlier gocfs).
	configNamed map[string]digest.Digest
}

// LayerRecord describes one layer of an ImageRecord.
type LayerRecord struct {
	// Digest and Size are the layer blob's (compressed) digest and size
	// as the manifest gives them, MediaType its media type.
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	// DiffID is the digest of the uncompressed tar archive.
	DiffID string `json:"diff_id"`
	// Stream is the fs-verity digest (hex) of the layer's split stream.
	Stream string `json:"stream"`
}

// writeRecord stores an image record in the transaction and names it for
// the manifest and as streams/refs/oci/NAME.
func writeRecord(tx *repo.Tx, rec *ImageRecord, streams [][]byte, name string) error {
	r := tx.Repo()
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	w := splitstream.NewWriter(r.Algorithm(), splitstream.OCIImage)
	for _, s := range streams {
		if err := w.AddStreamRef(s); err != nil {
			return err
		}
	}
	for _, h := range []string{rec.Manifest, rec.Config} {
		d, err := r.ParseDigest(h)
		if err != nil {
			return err
		}
		if err := w.AddObjectRef(d.Bytes()); err != nil {
			return err
		}
	}
	w.Write(data)
	if _, err := storeStream(tx, w, sha256.Sum256(data), ImageStreamName(rec.ManifestDigest)); err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	if err := repo.CheckRefName(name); err != nil {
		return err
	}
	return tx.SetStreamRef(refPrefix+name, ImageStreamName(rec.ManifestDigest))
}

// readRecord reads the image record a split stream object holds.
func readRecord(r *repo.Repo, digest []byte) (*ImageRecord, error) {
	ss, f, err := openStream(r, digest, splitstream.OCIImage)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer ss.Close()
	var buf bytes.Buffer
	if err := ss.Cat(&buf, func(d []byte) (io.ReadCloser, error) { return openObject(r, d) }); err != nil {
		return nil, fmt.Errorf("oci: image record %s: %w", fsverity.Hex(digest), err)
	}
	var rec ImageRecord
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		return nil, fmt.Errorf("oci: image record %s: %w", fsverity.Hex(digest), err)
	}
	return &rec, nil
}

// lookupRecord returns the record of the image called name: read from
// its manifest's and configuration's split streams (composefs-rs's
// layout), or, for an image pulled by earlier gocfs, its record stream.
func lookupRecord(r *repo.Repo, name string) (*ImageRecord, error) {
	if h, ok := strings.CutPrefix(name, "@"); ok {
		return digestRecord(r, h)
	}
	_, stream, d, err := findTag(r, name)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(stream, manifestStreamPrefix):
		return readImageStreams(r, stream, d)
	case strings.HasPrefix(stream, imageStreamPrefix):
		return readRecord(r, d.Bytes())
	}
	return nil, fmt.Errorf("oci: OCI image %s is the stream %s, not a manifest", name, stream)
}

// digestRecord finds the OCI image named "@DIGEST" (cfsctl's
// OciReference::Digest, tagged or not): the stored manifest of that digest
// (as cfsctl oci inspect and mount take it), or else the one image whose
// configuration has that digest (as cfsctl oci dump and compute-id take
// it).
func digestRecord(r *repo.Repo, h string) (*ImageRecord, error) {
	hash, err := v1.NewHash(h)
	if err != nil {
		return nil, fmt.Errorf("oci: @%s: not a digest: %w", h, err)
	}
	stream := ManifestStreamName(hash.String())
	if d, err := r.ResolveStream(stream); err == nil {
		return readImageStreams(r, stream, d)
	} else if !errors.Is(err, repo.ErrNotFound) {
		return nil, err
	}
	names, err := r.Streams()
	if err != nil {
		return nil, err
	}
	var found *ImageRecord
	for _, n := range names {
		if !strings.HasPrefix(n, manifestStreamPrefix) {
			continue
		}
		d, err := r.ResolveStream(n)
		if err != nil {
			continue
		}
		rec, err := readImageStreams(r, n, d)
		if err != nil || rec.ConfigDigest != hash.String() {
			continue
		}
		if found != nil && found.ManifestDigest != rec.ManifestDigest {
			return nil, fmt.Errorf("oci: @%s is the configuration of more than one image (%s, %s): name one by its manifest digest", hash, found.ManifestDigest, rec.ManifestDigest)
		}
		found = rec
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no OCI image with manifest or configuration %s", repo.ErrNotFound, hash)
	}
	return found, nil
}

// recordNames lists the names of the OCI images (streams/refs/oci/…:
// composefs-rs's encoded names, and the nested ones of earlier gocfs),
// sorted.
func recordNames(r *repo.Repo) ([]string, error) {
	refs, err := r.StreamRefs(strings.TrimSuffix(refPrefix, "/"))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(refs))
	for _, ref := range refs {
		n := strings.TrimPrefix(ref, refPrefix)
		if !strings.Contains(n, "/") {
			n = decodeTag(n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Compact(names), nil
}

func bufioReader(f *os.File) io.Reader { return bufio.NewReaderSize(f, 64<<10) }
