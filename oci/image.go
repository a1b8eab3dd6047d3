package oci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// ImageInfo describes one OCI image of a repository, for Images.
type ImageInfo struct {
	// Name is the image's name (streams/refs/oci/NAME).
	Name string `json:"name"`
	// ManifestDigest is its manifest's digest ("sha256:…").
	ManifestDigest string `json:"manifest_digest"`
	// Image is its composefs image's fs-verity digest (hex), and
	// ImagePresent whether the repository has that image (garbage
	// collection may have removed an image no reference names; Mount
	// builds it again from the layers).
	Image        string `json:"image"`
	ImagePresent bool   `json:"image_present"`
	// Layers is the number of layers, Size their blobs' total size.
	Layers int   `json:"layers"`
	Size   int64 `json:"size"`
	// Error says why the record could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// Images lists the OCI images of the repository, sorted by name.
func Images(r *repo.Repo) ([]ImageInfo, error) {
	names, err := recordNames(r)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	out := make([]ImageInfo, 0, len(names))
	for _, n := range names {
		info := ImageInfo{Name: n}
		rec, err := lookupRecord(r, n)
		if err != nil {
			info.Error = err.Error()
			out = append(out, info)
			continue
		}
		info.ManifestDigest, info.Image, info.Layers = rec.ManifestDigest, rec.Image, len(rec.Layers)
		for _, l := range rec.Layers {
			info.Size += l.Size
		}
		if d, err := r.ParseDigest(rec.Image); err == nil {
			if _, err := os.Stat(r.ImagePath(d)); err == nil {
				info.ImagePresent = true
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// Inspection is what Inspect tells of an OCI image.
type Inspection struct {
	Name string `json:"name"`
	ImageRecord
	// Created, Architecture, OS, Variant and Author come from the
	// configuration; Config is its runtime part (entrypoint, command,
	// environment, labels …).
	Created      string    `json:"created,omitempty"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Variant      string    `json:"variant,omitempty"`
	Author       string    `json:"author,omitempty"`
	Config       v1.Config `json:"config"`
	// History is the number of history entries, EmptyLayers those that
	// made no layer.
	History     int `json:"history"`
	EmptyLayers int `json:"empty_layers"`
	// Annotations are the manifest's.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// readObject reads an object whose SHA-256 must be the OCI digest dgst.
func readObject(r *repo.Repo, obj, dgst string) ([]byte, error) {
	d, err := r.ParseDigest(obj)
	if err != nil {
		return nil, err
	}
	f, err := r.OpenObject(d)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("oci: object %s: %w", obj, err)
	}
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); want != dgst {
		return nil, fmt.Errorf("oci: object %s has digest %s, not %s", obj, want, dgst)
	}
	return data, nil
}

// Manifest returns the raw manifest and configuration of the OCI image
// called name, checked against their digests.
func Manifest(r *repo.Repo, name string) (manifest, config []byte, rec *ImageRecord, err error) {
	rec, err = lookupRecord(r, name)
	if err != nil {
		return nil, nil, nil, err
	}
	if manifest, err = readObject(r, rec.Manifest, rec.ManifestDigest); err != nil {
		return nil, nil, nil, err
	}
	if config, err = readObject(r, rec.Config, rec.ConfigDigest); err != nil {
		return nil, nil, nil, err
	}
	return manifest, config, rec, nil
}

// Inspect returns a summary of the OCI image called name: its record, the
// configuration's main fields and the manifest's annotations.
func Inspect(r *repo.Repo, name string) (*Inspection, error) {
	rawManifest, rawConfig, rec, err := Manifest(r, name)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	c, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	in := &Inspection{
		Name: name, ImageRecord: *rec,
		Architecture: c.Architecture, OS: c.OS, Variant: c.Variant, Author: c.Author,
		Config: c.Config, History: len(c.History), Annotations: m.Annotations,
	}
	if !c.Created.IsZero() {
		in.Created = c.Created.UTC().Format("2006-01-02T15:04:05Z07:00")
	}
	for _, h := range c.History {
		if h.EmptyLayer {
			in.EmptyLayers++
		}
	}
	return in, nil
}

// EnsureImage makes sure the repository has the composefs image of the OCI
// image called name, building it again from the stored layers if it was
// removed, and returns its digest (hex).
func EnsureImage(ctx context.Context, r *repo.Repo, name string) (string, error) {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return "", err
	}
	d, err := r.ParseDigest(rec.Image)
	if err != nil {
		return "", err
	}
	if _, err := r.Resolve(rec.Image); err == nil {
		return rec.Image, nil
	} else if !errors.Is(err, repo.ErrNotFound) {
		return "", err
	}
	err = r.Update(ctx, func(tx *repo.Tx) error {
		root, err := recordImage(r, rec)
		if err != nil {
			return err
		}
		got, err := tx.CommitTree(root, repo.CreateOptions{})
		if err != nil {
			return err
		}
		if got.Digest != d {
			return fmt.Errorf("oci: the layers of %s make the image %s now, not %s as when pulled (pull it again)", name, got.Image, rec.Image)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return rec.Image, nil
}

// recordLayers reads the layers of an image record from their split
// streams, each checked against its diff ID.
func recordLayers(r *repo.Repo, rec *ImageRecord) ([][]entry, error) {
	layers := make([][]entry, len(rec.Layers))
	for i, l := range rec.Layers {
		sd, err := r.ParseDigest(l.Stream)
		if err != nil {
			return nil, err
		}
		want, err := hex.DecodeString(strings.TrimPrefix(l.DiffID, "sha256:"))
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d: diff ID %s: %w", i, l.DiffID, err)
		}
		if layers[i], err = storedLayer(r, sd.Bytes(), want); err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return layers, nil
}

// mergeLayers merges layers by rules into the root file system of their
// image, in the algorithm alg.
func mergeLayers(rec *ImageRecord, layers [][]entry, alg fsverity.Algorithm, rules Rules) (*tree.Node, error) {
	fs := newRootfs(rules)
	for i, entries := range layers {
		if err := fs.apply(entries); err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, rec.Layers[i].Digest, err)
		}
	}
	return fs.finish(alg)
}

// recordTree merges the layers of an image record, read from their split
// streams, by rules.
func recordTree(r *repo.Repo, rec *ImageRecord, rules Rules) (*tree.Node, error) {
	layers, err := recordLayers(r, rec)
	if err != nil {
		return nil, err
	}
	return mergeLayers(rec, layers, r.Algorithm(), rules)
}

// recordImage returns the root file system whose image is the one rec
// names (the image pull made): the layers merged by composefs-rs's rules,
// or, for an image pulled by gocfs before it took them, by its earlier
// rules (Rules.Legacy). Neither matching is an error naming both digests.
func recordImage(r *repo.Repo, rec *ImageRecord) (*tree.Node, error) {
	layers, err := recordLayers(r, rec)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, rules := range []Rules{{}, {Legacy: true}} {
		root, err := mergeLayers(rec, layers, r.Algorithm(), rules)
		if err != nil {
			return nil, err
		}
		id, err := r.TreeImageID(root)
		if err != nil {
			return nil, err
		}
		if id.Hex() == rec.Image {
			return root, nil
		}
		ids = append(ids, id.Hex())
	}
	return nil, fmt.Errorf("oci: the layers make the image %s (%s by gocfs's earlier rules), not %s as recorded", ids[0], ids[1], rec.Image)
}

// Mount mounts the composefs image of the OCI image called name on
// target (building the image again first if it was removed). opts and the
// result are as for repo.Repo.Mount: by default the image is verified and
// mounted nodev and nosuid, with the kernel or else with FUSE.
func Mount(ctx context.Context, r *repo.Repo, name, target string, opts mount.Options) (*mounter.Mounted, error) {
	img, err := EnsureImage(ctx, r, name)
	if err != nil {
		return nil, err
	}
	return r.Mount(img, target, opts)
}

// LayerStream returns the fs-verity digest of the split stream of the
// layer with the given diff ID ("sha256:HEX", or just HEX).
func LayerStream(r *repo.Repo, diffID string) ([]byte, error) {
	h := strings.TrimPrefix(diffID, "sha256:")
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
		return nil, fmt.Errorf("oci: %q is not a sha256 diff ID", diffID)
	}
	d, err := resolveLayer(r.ResolveStream, "sha256:"+h)
	if errors.Is(err, repo.ErrNotFound) {
		return nil, fmt.Errorf("%w: no layer with diff ID sha256:%s", repo.ErrNotFound, h)
	}
	return d, err
}

// WriteLayer writes the layer with the given diff ID ("sha256:HEX" or
// HEX) to w as the uncompressed tar archive it was, byte for byte. Its
// SHA-256 is checked at the end: on a mismatch, w has had the content all
// the same and the error wraps splitstream.ErrContent.
func WriteLayer(r *repo.Repo, diffID string, w io.Writer) error {
	d, err := LayerStream(r, diffID)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	h := sha256.New()
	err = writeLayerStream(r, d, io.MultiWriter(bw, h))
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), strings.TrimPrefix(diffID, "sha256:"); got != want {
		return fmt.Errorf("oci: layer %s: %w: the stream rebuilds a tar archive of sha256:%s", diffID, splitstream.ErrContent, got)
	}
	return nil
}
