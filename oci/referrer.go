package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
)

// referrersRefPrefix starts the stream references that record artifacts
// referring to an image (composefs-rs's REFERRER_REF_PREFIX, oci_image.rs).
const referrersRefPrefix = "oci-referrers/"

// Referrer is an OCI artifact stored as a referrer of an image: its
// manifest and its blobs (config and layers), by digest.
type Referrer struct {
	// Digest is the artifact manifest's digest ("sha256:…").
	Digest   string
	Manifest []byte
	Blobs    map[string][]byte
}

// StoreReferrer stores an artifact that refers to the image manifest
// subject ("sha256:…"), as composefs-rs stores a pulled artifact and
// records its referrer (oci_image.rs add_referrer, skopeo.rs
// ensure_layer): the config as a config stream, each layer blob as the
// stream oci-layer-DIGEST of content type oci_blob holding it as an
// object, the manifest as a manifest stream naming them ("config:DIGEST",
// and each layer by its digest), and streams/refs/oci-referrers/SUBJECT/
// ARTIFACT (each encoded as tags are) pointing at the manifest's stream.
// Every blob is checked against the digest the manifest gives it.
func StoreReferrer(ctx context.Context, r *repo.Repo, subject string, a *Referrer) error {
	m, err := v1.ParseManifest(bytes.NewReader(a.Manifest))
	if err != nil {
		return fmt.Errorf("oci: artifact %s: %w", a.Digest, err)
	}
	if err := checkDigest("artifact manifest", a.Digest, a.Manifest); err != nil {
		return err
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if err := checkDigest("artifact blob", d.Digest.String(), a.Blobs[d.Digest.String()]); err != nil {
			return err
		}
	}
	return r.Update(ctx, func(tx *repo.Tx) error {
		cfg := m.Config.Digest.String()
		_, cs, err := putJSONStream(tx, rsss.ContentTypeOCIConfig, a.Blobs[cfg], nil, ConfigStreamName(cfg))
		if err != nil {
			return err
		}
		// In write_manifest's order: the config, then the layers.
		named := []namedRef{{configRefKeyPrefix + cfg, cs}}
		for _, l := range m.Layers {
			ld := l.Digest.String()
			_, ls, err := putJSONStream(tx, rsss.ContentTypeOCIBlob, a.Blobs[ld], nil, LayerStreamName(ld))
			if err != nil {
				return err
			}
			named = append(named, namedRef{ld, ls})
		}
		if _, _, err := putJSONStream(tx, rsss.ContentTypeOCIManifest, a.Manifest, named, ManifestStreamName(a.Digest)); err != nil {
			return err
		}
		return tx.SetStreamRef(referrerRef(subject, a.Digest), ManifestStreamName(a.Digest))
	})
}

// referrerRef is the stream reference of an artifact referring to subject.
func referrerRef(subject, artifact string) string {
	return referrersRefPrefix + encodeTag(subject) + "/" + encodeTag(artifact)
}

// Referrers returns the artifacts stored as referrers of the image
// manifest subject, each document read back and checked against its
// digest.
func Referrers(r *repo.Repo, subject string) ([]*Referrer, error) {
	prefix := referrersRefPrefix + encodeTag(subject)
	refs, err := r.StreamRefs(prefix)
	if err != nil {
		return nil, err
	}
	var out []*Referrer
	for _, ref := range refs {
		a := &Referrer{Digest: decodeTag(strings.TrimPrefix(ref, prefix+"/")), Blobs: map[string][]byte{}}
		_, d, err := r.ResolveStreamRef(ref)
		if err != nil {
			return nil, err
		}
		data, _, named, err := readJSONStream(r, d, rsss.ContentTypeOCIManifest, a.Digest)
		if err != nil {
			return nil, err
		}
		a.Manifest = data
		m, err := v1.ParseManifest(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("oci: artifact %s: %w", a.Digest, err)
		}
		for i, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			key, ct := l.Digest.String(), rsss.ContentTypeOCIBlob
			if i == 0 {
				key, ct = configRefKeyPrefix+key, rsss.ContentTypeOCIConfig
			}
			sd, ok := named[key]
			if !ok {
				return nil, fmt.Errorf("oci: artifact %s: its manifest stream names no %s", a.Digest, key)
			}
			if a.Blobs[l.Digest.String()], _, _, err = readJSONStream(r, sd, ct, l.Digest.String()); err != nil {
				return nil, err
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// checkDigest checks data against its OCI digest ("sha256:…").
func checkDigest(what, want string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%w: %s %s has the digest %s", ErrDigestMismatch, what, want, got)
	}
	return nil
}
