package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
)

// streamNamePrefix starts the names of every split stream this package
// stores under streams/.
const streamNamePrefix = "gocfs-oci-"

func init() {
	repo.RegisterStreamKeeper(repo.StreamKeeper{
		Owns: func(name string) bool { return strings.HasPrefix(name, streamNamePrefix) },
		Live: func(r *repo.Repo) ([]digest.Digest, error) {
			live, err := liveObjects(r)
			if err != nil {
				return nil, err
			}
			return toDigests(r.Algorithm(), live)
		},
		Refs: func(r *repo.Repo, name string, d digest.Digest) ([]digest.Digest, error) {
			refs, err := streamRefs(r, name, d.Bytes())
			if err != nil {
				return nil, err
			}
			return toDigests(r.Algorithm(), refs)
		},
	})
}

// liveObjects returns every object the OCI images named under
// streams/refs/oci/ need: their records' split streams, manifests and
// configurations, their layers' split streams and the layers' file
// contents. Garbage collection calls it with the repository locked
// exclusively. (The composefs images are kept by their own references,
// images/refs/NAME; an image removed is built again from the layers.)
func liveObjects(r *repo.Repo) ([][]byte, error) {
	names, err := recordNames(r)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	var live [][]byte
	seen := make(map[string]bool)
	add := func(d []byte) bool {
		if seen[string(d)] {
			return false
		}
		seen[string(d)] = true
		live = append(live, d)
		return true
	}
	for _, n := range names {
		target, err := os.Readlink(recordRef(r, n))
		if err != nil {
			return nil, fmt.Errorf("oci: %w", err)
		}
		d, err := resolveStream(r, filepath.Base(target))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a dangling name keeps nothing
		}
		if err != nil {
			return nil, err
		}
		if !add(d) {
			continue
		}
		h, err := streamHeader(r, d, splitstream.OCIImage)
		if err != nil {
			return nil, fmt.Errorf("oci: image %s: %w", n, err)
		}
		for _, o := range h.Objects {
			add(o)
		}
		for _, s := range h.Streams {
			if !add(s) {
				continue
			}
			lh, err := streamHeader(r, s, splitstream.TarLayer)
			if err != nil {
				return nil, fmt.Errorf("oci: image %s: %w", n, err)
			}
			for _, o := range lh.Objects {
				add(o)
			}
		}
	}
	return live, nil
}

// streamRefs returns what the split stream streams/NAME (whose object is
// digest) refers to, for fsck to check: the objects it uses or keeps (file
// contents; an image record's manifest and configuration) and the split
// streams it refers to (an image record's layers).
func streamRefs(r *repo.Repo, name string, digest []byte) ([][]byte, error) {
	var want splitstream.ContentType
	switch {
	case strings.HasPrefix(name, layerStreamPrefix):
		want = splitstream.TarLayer
	case strings.HasPrefix(name, imageStreamPrefix):
		want = splitstream.OCIImage
	default:
		return nil, fmt.Errorf("oci: %s is not a stream name this gocfs writes", name)
	}
	h, err := streamHeader(r, digest, want)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	refs := make([][]byte, 0, len(h.Objects)+len(h.Streams))
	refs = append(refs, h.Objects...)
	return append(refs, h.Streams...), nil
}

// streamHeader reads the header of the split stream object digest.
func streamHeader(r *repo.Repo, digest []byte, want splitstream.ContentType) (*splitstream.Header, error) {
	f, err := os.Open(r.ObjectPath(objectDigest(r.Algorithm(), digest)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := splitstream.ReadHeader(bufioReader(f))
	if err != nil {
		return nil, fmt.Errorf("split stream %s: %w", fsverity.Hex(digest), err)
	}
	if h.ContentType != want || h.Algorithm != r.Algorithm() {
		return nil, fmt.Errorf("split stream %s holds %s (%s), not %s", fsverity.Hex(digest), h.ContentType, h.Algorithm, want)
	}
	return h, nil
}

// Remove removes the OCI image called name: its record's name
// (streams/refs/oci/NAME) and, if it still names the image's composefs
// image, images/refs/NAME. Garbage collection then removes what no other
// image needs.
func Remove(r *repo.Repo, name string) error {
	rec, err := lookupRecord(r, name)
	if err != nil {
		return err
	}
	unlock, err := r.Lock(context.Background(), false)
	if err != nil {
		return err
	}
	defer unlock()
	if d, err := r.ResolveRef(name); err == nil && d.Hex() == rec.Image {
		ref := filepath.Join(r.Dir(), "images", "refs", filepath.FromSlash(name))
		if err := os.Remove(ref); err != nil {
			return fmt.Errorf("oci: %w", err)
		}
		removeEmptyParents(filepath.Dir(ref), filepath.Join(r.Dir(), "images", "refs"))
	}
	ref := recordRef(r, name)
	if err := os.Remove(ref); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	removeEmptyParents(filepath.Dir(ref), filepath.Join(r.Dir(), streamRefsDir))
	return r.Sync()
}

// removeEmptyParents removes dir and its parents up to top (excluded)
// while they are empty.
func removeEmptyParents(dir, top string) {
	for d := dir; d != top && strings.HasPrefix(d, top+string(filepath.Separator)); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}
