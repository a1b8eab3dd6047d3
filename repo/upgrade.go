package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
)

// upgrade brings a repository written by earlier gocfs to composefs-rs
// 0.9's layout, the first time it is opened for writing, with a notice:
// meta.json gets erofs_formats (0: mkcomposefs's default images, what
// gocfs wrote), and OCI tags nested under streams/refs/oci/ (a/b) are
// renamed to composefs-rs's encoded form (a%2Fb). Each step is atomic and
// repeated if a crash interrupts it. A repository with V2 images
// (composefs-rs's before 0.9, which also has no erofs_formats) is left
// alone.
func (r *Repo) upgrade() error {
	nested, err := r.nestedTags()
	if err != nil {
		return err
	}
	if !(r.hasMeta && r.meta.ErofsFormats == nil) && len(nested) == 0 {
		return nil // nothing to do: no lock taken
	}
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return err
	}
	defer unlock()
	if r.hasMeta && r.meta.ErofsFormats == nil {
		v2, err := r.hasV2Images()
		if err != nil {
			return err
		}
		if !v2 {
			if err := r.upgradeMeta(); err != nil {
				return err
			}
		}
	}
	return r.upgradeTags()
}

// Upgrader brings what a package stored in a repository written by earlier
// gocfs to the current layout. It runs each time a repository is opened
// for writing (after the repository's own upgrade steps), so it must be
// cheap when there is nothing to do, take the repository lock itself
// (Repo.Update) when there is, be repeatable after a crash, and say what
// it did with Repo.Notice.
type Upgrader func(ctx context.Context, r *Repo) error

var upgraders []namedUpgrader

type namedUpgrader struct {
	name string
	fn   Upgrader
}

// RegisterUpgrade registers fn, called name in errors, to run when a
// repository is opened for writing (see Upgrader). Packages that store
// their own streams register one from an init function (package oci
// rewrites earlier gocfs's OCI streams into composefs-rs's).
func RegisterUpgrade(name string, fn Upgrader) {
	upgraders = append(upgraders, namedUpgrader{name, fn})
}

// runUpgraders runs the registered upgrades.
func (r *Repo) runUpgraders() error {
	for _, u := range upgraders {
		if err := u.fn(context.Background(), r); err != nil {
			return fmt.Errorf("%s: %w", u.name, err)
		}
	}
	return nil
}

// hasV2Images reports whether an image under images/ has a V2 header.
func (r *Repo) hasV2Images() (bool, error) {
	images, _, err := r.readImageLinks()
	if err != nil {
		return false, err
	}
	for _, im := range images {
		d, err := r.ParseDigest(im)
		if err != nil {
			continue
		}
		f, err := r.st.OpenObject(d)
		if err != nil {
			continue
		}
		v, err := image.ReadVersion(f)
		f.Close()
		if err == nil && v >= 2 {
			return true, nil
		}
	}
	return false, nil
}

// upgradeMeta replaces meta.json, atomically, by one with erofs_formats
// {"default": 0}, keeping its fs-verity if it had it.
func (r *Repo) upgradeMeta() error {
	meta := r.meta
	meta.ErofsFormats = &ErofsFormats{Default: 0}
	for _, p := range []*[]string{&meta.Features.Compatible, &meta.Features.ReadOnlyCompatible, &meta.Features.Incompatible} {
		if *p == nil {
			*p = []string{}
		}
	}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := replaceMeta(r.dir, data, r.alg, r.secure); err != nil {
		return err
	}
	r.meta = meta
	r.notice("upgraded %s/%s to composefs-rs 0.9's format: erofs_formats {\"default\": 0} (the images gocfs made so far)", r.dir, MetaFile)
	return nil
}

// upgradeTags renames the nested OCI tags streams/refs/oci/a/b to
// streams/refs/oci/a%2Fb: the new name first (made durable), then the old
// one removed.
func (r *Repo) upgradeTags() error {
	refs, err := r.nestedTags()
	if err != nil {
		return err
	}
	n := 0
	for _, ref := range refs {
		name := strings.TrimPrefix(ref, "oci/")
		target, err := r.readlink(streamRefsDir + "/" + ref)
		if err != nil {
			return fmt.Errorf("repo: upgrading %s/%s: %w", streamRefsDir, ref, err)
		}
		stream, err := parseStreamRefTarget(ref, target)
		if err != nil {
			continue // fsck reports it
		}
		enc := "oci/" + strings.ReplaceAll(strings.ReplaceAll(name, "%", "%25"), "/", "%2F")
		if err := r.replaceSymlinkAt(streamRefsDir+"/"+enc, streamRefTarget(enc, stream)); err != nil {
			return fmt.Errorf("repo: upgrading %s/%s: %w", streamRefsDir, ref, err)
		}
		if err := r.sync(); err != nil {
			return err
		}
		if err := r.removeLink(streamRefsDir, streamRefsDir+"/"+ref); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		n++
	}
	if n == 0 {
		return nil
	}
	r.notice("upgraded %d OCI tag(s) of %s to composefs-rs's names (streams/refs/oci/a%%2Fb for a/b)", n, r.dir)
	return r.sync()
}

// nestedTags lists the stream references under streams/refs/oci/ that are
// nested (oci/a/b), as earlier gocfs named OCI images.
func (r *Repo) nestedTags() ([]string, error) {
	refs, err := r.StreamRefs("oci")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ref := range refs {
		if strings.Contains(strings.TrimPrefix(ref, "oci/"), "/") {
			out = append(out, ref)
		}
	}
	return out, nil
}

// replaceMeta replaces meta.json by data: written to a new file under
// tmp/, synced, given fs-verity if verity, then renamed over meta.json.
func replaceMeta(dir string, data []byte, alg fsverity.Algorithm, verity bool) error {
	return writeMetaFile(dir, data, alg, verity, true)
}
