package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/repo"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
	cfsroot "github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

// maxBootConfigRead bounds what the boot transformation reads of a file
// (/etc/selinux/config).
const maxBootConfigRead = 1 << 20

// The configuration stream's named references to an image's bootable
// variants (crates/composefs-oci/src/lib.rs): BOOT_IMAGE_REF_KEY_V1 for
// the V1 (and V0) EROFS image made with the default xattr rules,
// BOOT_IMAGE_REF_KEY for the V2 one, each suffixed ".xattrs=MODE" for
// another mode (boot_image_ref_key); all start with BOOT_IMAGE_REF_KEY
// (take_boot_image_refs), and imageRefKeyV2 is IMAGE_REF_KEY.
const (
	bootRefKeyPrefix = "composefs.image.boot"
	bootRefKeyV1     = "composefs.image.boot.v1"
	imageRefKeyV2    = "composefs.image"
)

// ErrNoBootImage is returned for an OCI image no bootable image is linked
// to (pulled without --bootable).
var ErrNoBootImage = errors.New("no boot image linked — pull with --bootable")

// bootRefKey is the named reference of the bootable image made by rules,
// in an EROFS format of epoch 1 (V0 or V1, the formats gocfs writes), as
// composefs-rs's boot_image_ref_key names it.
func bootRefKey(rules Rules) string {
	if rules.Xattrs == cfsroot.AllowlistOnly {
		return bootRefKeyV1
	}
	return bootRefKeyV1 + ".xattrs=" + rules.Xattrs.String()
}

// BootableTree returns the tree of the bootable variant of the OCI image
// called name: its composefs tree with rootfs.TransformForBoot applied
// (composefs-rs's transform_for_boot: /boot and /sysroot emptied, SELinux
// labels removed; an image with an SELinux policy is refused).
func BootableTree(ctx context.Context, r *repo.Repo, name string) (*tree.Node, error) {
	return BootableTreeWith(ctx, r, name, Rules{})
}

// BootableTreeWith is BootableTree with the image's tree merged by rules
// (cfsctl oci dump --bootable --xattrs MODE).
func BootableTreeWith(ctx context.Context, r *repo.Repo, name string, rules Rules) (*tree.Node, error) {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return nil, err
	}
	return bootableTree(r, rec, name, rules)
}

// bootableTree is BootableTreeWith of an image's record.
func bootableTree(r *repo.Repo, rec *ImageRecord, name string, rules Rules) (*tree.Node, error) {
	root, err := recordTree(r, rec, rules)
	if err != nil {
		return nil, err
	}
	read := func(path string, n *tree.Node) ([]byte, error) {
		f, err := r.Store().OpenPath(n.Payload)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxBootConfigRead))
	}
	if err := cfsroot.TransformForBoot(root, read); err != nil {
		return nil, fmt.Errorf("oci: %s: bootable image: %w", name, err)
	}
	return root, nil
}

// ComputeBootableID returns the digest of the bootable variant of the OCI
// image called name, in the repository's algorithm and EROFS format,
// storing nothing (cfsctl oci compute-id --bootable).
func ComputeBootableID(ctx context.Context, r *repo.Repo, name string) (digest.Digest, error) {
	return ComputeBootableIDWith(ctx, r, name, Rules{})
}

// ComputeBootableIDWith is ComputeBootableID with the image's tree merged
// by rules (cfsctl oci compute-id --bootable --xattrs MODE).
func ComputeBootableIDWith(ctx context.Context, r *repo.Repo, name string, rules Rules) (digest.Digest, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return digest.Digest{}, err
	}
	defer unlock()
	root, err := BootableTreeWith(ctx, r, name, rules)
	if err != nil {
		return digest.Digest{}, err
	}
	return r.TreeImageID(root)
}

// BootImage returns the bootable image linked to the OCI image called
// name (by pull --bootable, made with the default xattr rules), or an
// error wrapping ErrNoBootImage.
func BootImage(r *repo.Repo, name string) (digest.Digest, error) {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return digest.Digest{}, err
	}
	h, ok := rec.BootImages[bootRefKeyV1]
	if !ok {
		return digest.Digest{}, fmt.Errorf("oci: %s: %w", name, ErrNoBootImage)
	}
	return r.ParseDigest(h)
}

// MountBootable mounts the bootable image linked to the OCI image called
// name on target (cfsctl oci mount --bootable); opts are as for Mount.
// An image pulled without --bootable is an error wrapping ErrNoBootImage.
func MountBootable(ctx context.Context, r *repo.Repo, name, target string, opts mount.Options) (*mounter.Mounted, error) {
	d, err := BootImage(r, name)
	if err != nil {
		return nil, err
	}
	return r.Mount(d.Hex(), target, opts)
}

// GenerateBootImage makes the bootable variant of the OCI image called
// name with the default xattr rules, stores it and links it to the image
// as composefs-rs's generate_boot_image does: a named reference
// (composefs.image.boot.v1) on the configuration's stream, which keeps it
// alive through garbage collection, the configuration's and manifest's
// streams written again. An image with one linked already is left alone.
// It returns the bootable image's digest.
func GenerateBootImage(ctx context.Context, r *repo.Repo, name string) (digest.Digest, error) {
	var d digest.Digest
	err := r.Update(ctx, func(tx *repo.Tx) error {
		rec, err := lookupRecord(r, name)
		if err != nil {
			return err
		}
		key := bootRefKey(Rules{})
		if h, ok := rec.BootImages[key]; ok {
			d, err = r.ParseDigest(h)
			return err
		}
		root, err := bootableTree(r, rec, name, Rules{})
		if err != nil {
			return err
		}
		res, err := tx.CommitTree(root, repo.CreateOptions{})
		if err != nil {
			return err
		}
		d = res.Digest
		return linkBootImage(tx, rec, key, d)
	})
	return d, err
}

// linkBootImage writes the configuration stream of rec again with the
// named reference key to the bootable image d added, and its manifest's
// stream naming the new configuration stream, in the order composefs-rs's
// write_config_raw and write_manifest give their references (diff IDs,
// composefs.image, composefs.image.v1, the boot images; composefs-rs takes
// these last from a hash map, gocfs sorts them).
func linkBootImage(tx *repo.Tx, rec *ImageRecord, key string, d digest.Digest) error {
	if rec.configNamed == nil {
		return fmt.Errorf("oci: image %s was stored by an earlier gocfs: pull it again to link a boot image", rec.ManifestDigest)
	}
	r := tx.Repo()
	config, err := readObject(r, rec.Config, rec.ConfigDigest)
	if err != nil {
		return err
	}
	manifest, err := readObject(r, rec.Manifest, rec.ManifestDigest)
	if err != nil {
		return err
	}
	layerRefs := make([]namedRef, len(rec.Layers))
	for i, l := range rec.Layers {
		layerRefs[i] = namedRef{l.DiffID, rec.configNamed[l.DiffID]}
	}
	crefs := slices.Clone(layerRefs)
	for _, k := range []string{imageRefKeyV2, imageRefKeyV1} {
		if v, ok := rec.configNamed[k]; ok {
			crefs = append(crefs, namedRef{k, v})
		}
	}
	boot := map[string]digest.Digest{key: d}
	for k, v := range rec.configNamed {
		if strings.HasPrefix(k, bootRefKeyPrefix) && k != key {
			boot[k] = v
		}
	}
	keys := make([]string, 0, len(boot))
	for k := range boot {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		crefs = append(crefs, namedRef{k, boot[k]})
	}
	_, cstream, err := putJSONStream(tx, rsss.ContentTypeOCIConfig, config, crefs, ConfigStreamName(rec.ConfigDigest))
	if err != nil {
		return err
	}
	mrefs := append([]namedRef{{configRefKeyPrefix + rec.ConfigDigest, cstream}}, layerRefs...)
	_, _, err = putJSONStream(tx, rsss.ContentTypeOCIManifest, manifest, mrefs, ManifestStreamName(rec.ManifestDigest))
	return err
}

// BootMatch is what FindMatchingBootImage found.
type BootMatch struct {
	// Found says whether a combination made the expected digest; Xattrs
	// and Version are that combination (the xattr rules and the EROFS
	// format version), Digest the bootable image's digest.
	Found   bool
	Xattrs  cfsroot.XattrFilter
	Version int
	Digest  digest.Digest
	// Tried is the number of combinations tried.
	Tried int
}

// bootSearchModes are the xattr rules FindMatchingBootImage tries, in
// composefs-rs's order (XattrFiltering::VARIANTS, default first).
var bootSearchModes = []cfsroot.XattrFilter{cfsroot.AllowlistOnly, cfsroot.KeepUserXattrs}

// FindMatchingBootImage looks for the xattr rules and EROFS format version
// whose bootable image of the OCI image called name has the digest
// expected, as composefs-rs's find_matching_boot_image does (cfsctl oci
// pull --bootable --expected-digest): for each xattr mode (default first),
// the boot images already linked for it (V1 and V2 keys), then the V1
// image computed from the layers (composefs-rs also computes V2, which
// gocfs does not write). A match found by computing is stored and linked
// under its mode's key. No match is not an error: Found is false.
func FindMatchingBootImage(ctx context.Context, r *repo.Repo, name string, expected digest.Digest) (*BootMatch, error) {
	if expected.Algorithm() != r.Algorithm() {
		return nil, fmt.Errorf("oci: expected boot image digest %s is not of the repository's algorithm", expected)
	}
	m := &BootMatch{}
	err := r.Update(ctx, func(tx *repo.Tx) error {
		rec, err := lookupRecord(r, name)
		if err != nil {
			return err
		}
		for _, mode := range bootSearchModes {
			if found, err := tryBootMode(tx, rec, name, Rules{Xattrs: mode}, expected, m); found || err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// bootV1Options are the options of a V1 EROFS image.
var bootV1Options = image.Options{MinVersion: 1, MaxVersion: 1}

// tryBootMode is FindMatchingBootImage for one xattr mode: the linked
// images first, then the V1 image computed from the layers, linked when
// it matches.
func tryBootMode(tx *repo.Tx, rec *ImageRecord, name string, rules Rules, expected digest.Digest, m *BootMatch) (bool, error) {
	r := tx.Repo()
	key := bootRefKey(rules)
	v2key := bootRefKeyPrefix + strings.TrimPrefix(key, bootRefKeyV1)
	for _, c := range []struct {
		key     string
		version int
	}{{key, 1}, {v2key, 2}} {
		if h, ok := rec.BootImages[c.key]; ok {
			m.Tried++
			if h == expected.Hex() {
				*m = BootMatch{Found: true, Xattrs: rules.Xattrs, Version: c.version, Digest: expected, Tried: m.Tried}
				return true, nil
			}
		}
	}
	if _, ok := rec.BootImages[key]; ok {
		return false, nil
	}
	root, err := bootableTree(r, rec, name, rules)
	if err != nil {
		return false, err
	}
	id, err := bootV1ID(r, root)
	if err != nil {
		return false, err
	}
	m.Tried++
	if id != expected {
		return false, nil
	}
	opts := bootV1Options
	res, err := tx.CommitTree(root, repo.CreateOptions{Image: &opts})
	if err != nil {
		return false, err
	}
	if res.Digest != expected {
		return false, fmt.Errorf("oci: %s: the bootable image stored is %s, not %s as computed", name, res.Digest, expected)
	}
	*m = BootMatch{Found: true, Xattrs: rules.Xattrs, Version: 1, Digest: expected, Tried: m.Tried}
	return true, linkBootImage(tx, rec, key, expected)
}

// bootV1ID returns the digest of root's V1 EROFS image in the
// repository's algorithm.
func bootV1ID(r *repo.Repo, root *tree.Node) (digest.Digest, error) {
	id, err := r.TreeImageID(root)
	if err != nil {
		return digest.Digest{}, err
	}
	if opts, err := r.ImageOptions(); err != nil || opts == bootV1Options {
		return id, err
	}
	return repo.ImageID(root, r.Algorithm(), bootV1Options)
}
