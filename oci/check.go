package oci

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// Candidate is an image a pull is about to store, as PullOptions.Check
// sees it: under the repository lock, after every blob was checked
// against its descriptor, before anything is named. Package oci/seal
// checks sealed digests and signatures here.
type Candidate struct {
	// Manifest and Config are the image's manifest and configuration,
	// byte for byte as the source has them; ManifestDigest is the
	// manifest's digest ("sha256:…").
	Manifest, Config []byte
	ManifestDigest   string
	// Root is the merged rootfs the composefs image is made of.
	Root *tree.Node

	r      *repo.Repo
	layers [][]entry
	sigs   map[digest.Digest][]byte
}

// SetSignature gives the object d (the composefs image, the manifest's or
// the configuration's, by its digest), if the pull stores it, the
// fs-verity builtin signature sig,
// which the kernel then checks when it enables fs-verity on it (see
// store.Writer.SetSignature).
func (c *Candidate) SetSignature(d digest.Digest, sig []byte) {
	if c.sigs == nil {
		c.sigs = make(map[digest.Digest][]byte)
	}
	c.sigs[d] = sig
}

// ImageID returns the digest the composefs image of Root will have in
// the repository.
func (c *Candidate) ImageID() (digest.Digest, error) { return c.r.TreeImageID(c.Root) }

// LayerImageIDs returns, for each layer bottom first, the digest of the
// composefs image the layer alone makes (merged onto an empty rootfs, as
// a one-layer image of it would be).
func (c *Candidate) LayerImageIDs() ([]digest.Digest, error) {
	out := make([]digest.Digest, len(c.layers))
	for i, entries := range c.layers {
		d, err := layerImageID(c.r, entries)
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d: %w", i, err)
		}
		out[i] = d
	}
	return out, nil
}

// layerImageID returns the digest of the composefs image of one layer's
// entries merged onto an empty rootfs.
func layerImageID(r *repo.Repo, entries []entry) (digest.Digest, error) {
	fs := newRootfs(Rules{})
	if err := fs.apply(entries); err != nil {
		return digest.Digest{}, err
	}
	root, err := fs.finish(r.Algorithm())
	if err != nil {
		return digest.Digest{}, err
	}
	return r.TreeImageID(root)
}

// ImageIDsWith returns the digests of the composefs images of the stored
// OCI image called name, made with alg: the merged image and, bottom
// first, the image each layer makes alone (merged onto an empty rootfs,
// as a one-layer image of it would be); nothing is stored. These are the
// digests of composefs's sealing specification. For the repository's
// algorithm they are the images a pull stores; for another one, those a
// repository of that algorithm would have: each file's content is read
// back from its object, checked against the object's name, and hashed
// with alg.
func ImageIDsWith(ctx context.Context, r *repo.Repo, name string, alg fsverity.Algorithm) (merged digest.Digest, layers []digest.Digest, err error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return digest.Digest{}, nil, err
	}
	defer unlock()
	rec, err := lookupRecord(r, name)
	if err != nil {
		return digest.Digest{}, nil, err
	}
	opts, err := r.ImageOptions()
	if err != nil {
		return digest.Digest{}, nil, err
	}
	all := newRootfs(Rules{})
	for i, l := range rec.Layers {
		entries, err := recordLayer(r, l, alg)
		if err != nil {
			return digest.Digest{}, nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
		one := newRootfs(Rules{})
		if err := one.apply(entries); err != nil {
			return digest.Digest{}, nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
		d, err := rootfsImageID(r, one, alg, opts)
		if err != nil {
			return digest.Digest{}, nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
		layers = append(layers, d)
		if err := all.apply(entries); err != nil {
			return digest.Digest{}, nil, fmt.Errorf("oci: layer %d (%s): %w", i, l.Digest, err)
		}
	}
	if merged, err = rootfsImageID(r, all, alg, opts); err != nil {
		return digest.Digest{}, nil, err
	}
	return merged, layers, nil
}

// rootfsImageID returns the digest, made with alg, of the image of fs:
// the one r gives it, or for another algorithm the one a repository of
// alg would (each file carries its object's digest, as r.TreeImageID
// gives them).
func rootfsImageID(r *repo.Repo, fs *mergedFS, alg fsverity.Algorithm, opts image.Options) (digest.Digest, error) {
	root, err := fs.finish(alg)
	if err != nil {
		return digest.Digest{}, err
	}
	if alg == r.Algorithm() {
		return r.TreeImageID(root)
	}
	err = root.Walk(func(p string, n *tree.Node) error {
		if n.Payload == "" || n.Mode&tree.ModeType != tree.ModeRegular {
			return nil
		}
		d, err := digest.ParseObjectPath(n.Payload)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n.Digest = d.Bytes()
		return nil
	})
	if err != nil {
		return digest.Digest{}, err
	}
	return repo.ImageID(root, alg, opts)
}

// recordLayer reads a stored layer's entries, checked against its diff
// ID, with their files' digests made with alg.
func recordLayer(r *repo.Repo, l LayerRecord, alg fsverity.Algorithm) ([]entry, error) {
	sd, err := r.ParseDigest(l.Stream)
	if err != nil {
		return nil, err
	}
	want, err := hex.DecodeString(strings.TrimPrefix(l.DiffID, "sha256:"))
	if err != nil {
		return nil, fmt.Errorf("diff ID %s: %w", l.DiffID, err)
	}
	entries, err := storedLayer(r, sd.Bytes(), want)
	if err != nil || alg == r.Algorithm() {
		return entries, err
	}
	for i := range entries {
		e := &entries[i]
		if e.kind != entryAdd || e.hardlink || e.mode&tree.ModeType != tree.ModeRegular || e.size == 0 {
			continue
		}
		if e.digest, err = rehash(r, e, alg); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
	}
	return entries, nil
}

// rehash returns the digest, made with alg, of a regular file's content:
// inline, or read from its object, whose name (the repository's digest)
// is checked as it is read.
func rehash(r *repo.Repo, e *entry, alg fsverity.Algorithm) ([]byte, error) {
	h := fsverity.New(alg)
	if e.content != nil {
		h.Write(e.content)
		return h.Sum(nil), nil
	}
	od := objectDigest(r.Algorithm(), e.digest)
	f, err := r.OpenObject(od)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	own := fsverity.New(r.Algorithm())
	if _, err := io.Copy(io.MultiWriter(h, own), f); err != nil {
		return nil, fmt.Errorf("object %s: %w", od, err)
	}
	if !od.Equal(r.Algorithm(), own.Sum(nil)) {
		return nil, fmt.Errorf("object %s: its content has another digest", od)
	}
	return h.Sum(nil), nil
}
