package oci

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/store"
)

// Names of split streams under the repository's streams/ directory. They
// start with "gocfs-" so that they never clash with the names composefs-rs
// gives its own split streams (whose format differs).
const (
	streamsDir        = "streams"
	streamRefsDir     = "streams/refs"
	layerStreamPrefix = "gocfs-oci-layer-"
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

// streamLinkTarget is what streams/NAME points at: the stream's object.
func streamLinkTarget(d []byte) string {
	h := fsverity.Hex(d)
	return "../objects/" + h[:2] + "/" + h[2:]
}

// streamPath returns the path of streams/NAME.
func streamPath(r *repo.Repo, name string) string {
	return filepath.Join(r.Dir(), streamsDir, name)
}

// resolveStream returns the digest of the object that streams/NAME points
// at, or an error wrapping fs.ErrNotExist when there is no such stream (or
// its object is gone).
func resolveStream(r *repo.Repo, name string) ([]byte, error) {
	target, err := os.Readlink(streamPath(r, name))
	if err != nil {
		return nil, err
	}
	rel, ok := strings.CutPrefix(target, "../objects/")
	if !ok {
		return nil, fmt.Errorf("oci: streams/%s points at %q, not at an object", name, target)
	}
	d, err := r.ParseObjectRel(rel)
	if err != nil {
		return nil, fmt.Errorf("oci: streams/%s: %w", name, err)
	}
	if _, err := os.Stat(r.ObjectPath(d)); err != nil {
		return nil, err
	}
	return d.Bytes(), nil
}

// openStream opens the split stream object with the given digest.
func openStream(r *repo.Repo, digest []byte, want splitstream.ContentType) (*splitstream.Reader, *os.File, error) {
	f, err := os.Open(r.ObjectPath(objectDigest(r.Algorithm(), digest)))
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

// storeStream stores a finished split stream as an object and names it
// streams/NAME. Everything the stream refers to must be published already:
// the stream's content is made durable with them before its name appears.
func storeStream(r *repo.Repo, objs *store.Writer, w *splitstream.Writer, sum [32]byte, name string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := w.Finish(&buf, sum); err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	digest, err := objs.Put(buf.Bytes())
	if err != nil {
		return nil, err
	}
	if err := objs.Flush(); err != nil {
		return nil, err
	}
	if err := r.ReplaceSymlink(streamLinkTarget(digest.Bytes()), streamPath(r, name)); err != nil {
		return nil, fmt.Errorf("oci: naming stream %s: %w", name, err)
	}
	return digest.Bytes(), nil
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

// writeRecord stores an image record and names it for the manifest and as
// streams/refs/oci/NAME.
func writeRecord(r *repo.Repo, objs *store.Writer, rec *ImageRecord, streams [][]byte, name string) error {
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
	if _, err := storeStream(r, objs, w, sha256.Sum256(data), ImageStreamName(rec.ManifestDigest)); err != nil {
		return err
	}
	if name != "" {
		if err := repo.CheckRefName(name); err != nil {
			return err
		}
		ref := filepath.Join(r.Dir(), streamRefsDir, filepath.FromSlash(refPrefix+name))
		target := strings.Repeat("../", strings.Count(refPrefix+name, "/")+1) + ImageStreamName(rec.ManifestDigest)
		if err := r.ReplaceSymlink(target, ref); err != nil {
			return fmt.Errorf("oci: naming image %s: %w", name, err)
		}
	}
	return objs.Sync()
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
	if err := ss.Cat(&buf, func(d []byte) (io.ReadCloser, error) { return os.Open(r.ObjectPath(objectDigest(r.Algorithm(), d))) }); err != nil {
		return nil, fmt.Errorf("oci: image record %s: %w", fsverity.Hex(digest), err)
	}
	var rec ImageRecord
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		return nil, fmt.Errorf("oci: image record %s: %w", fsverity.Hex(digest), err)
	}
	return &rec, nil
}

// recordRef returns the path of streams/refs/oci/NAME.
func recordRef(r *repo.Repo, name string) string {
	return filepath.Join(r.Dir(), streamRefsDir, filepath.FromSlash(refPrefix+name))
}

// lookupRecord returns the record named NAME.
func lookupRecord(r *repo.Repo, name string) (*ImageRecord, error) {
	if err := repo.CheckRefName(name); err != nil {
		return nil, err
	}
	target, err := os.Readlink(recordRef(r, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no OCI image %s", repo.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	stream := filepath.Base(target)
	if !strings.HasPrefix(stream, imageStreamPrefix) {
		return nil, fmt.Errorf("oci: %s points at %q, not at an image record", recordRef(r, name), target)
	}
	d, err := resolveStream(r, stream)
	if err != nil {
		return nil, fmt.Errorf("oci: OCI image %s: %w", name, err)
	}
	return readRecord(r, d)
}

// recordNames lists the names of the image records (streams/refs/oci/…),
// sorted.
func recordNames(r *repo.Repo) ([]string, error) {
	top := filepath.Join(r.Dir(), streamRefsDir, strings.TrimSuffix(refPrefix, "/"))
	var names []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == top && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			rel, _ := filepath.Rel(top, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

func bufioReader(f *os.File) io.Reader { return bufio.NewReaderSize(f, 64<<10) }
