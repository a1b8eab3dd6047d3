package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/store"
)

// GCOptions control garbage collection.
type GCOptions struct {
	// DryRun only reports what would be removed.
	DryRun bool
	// Roots are images (any name Resolve takes) kept besides those
	// references point at.
	Roots []string
}

// GCResult says what garbage collection removed (or, in a dry run, would
// remove).
type GCResult struct {
	DryRun bool `json:"dry_run"`
	// ImagesKept counts the images kept; ImagesRemoved lists the digests
	// of those removed.
	ImagesKept    int      `json:"images_kept"`
	ImagesRemoved []string `json:"images_removed"`
	// ObjectsKept and ObjectsRemoved count objects (images included),
	// BytesRemoved their size.
	ObjectsKept    int   `json:"objects_kept"`
	ObjectsRemoved int   `json:"objects_removed"`
	BytesRemoved   int64 `json:"bytes_removed"`
	// Leftovers lists the temporary files of interrupted operations
	// removed, relative to the repository.
	Leftovers []string `json:"leftovers_removed"`
	// StreamsPruned lists the stream links (streams/NAME) removed because
	// their object was.
	StreamsPruned []string `json:"streams_pruned,omitempty"`
	// Warnings are things found wrong but left alone (Fsck says more).
	Warnings []string `json:"warnings,omitempty"`
}

// GC removes every image that no reference (and no root) names, every
// object no remaining image refers to, and what interrupted operations
// left in the repository. It holds the repository lock exclusively (a dry
// run, shared), so it waits for imports under way and they wait for it.
//
// Split streams are kept as composefs-rs keeps them: those the stream
// references (streams/refs/...) and the roots name, and, transitively,
// the objects and the streams their references name (see
// Repo.StreamLinks); a stream link (streams/NAME) whose object is removed
// is removed too. GC stops without removing anything if an image or a
// split stream it must keep can't be read. Everything it removes
// is reached through the repository's own directories and no symbolic
// link: a symbolic link where a directory of the repository should be
// (tmp/, objects/XX) is reported as a warning and left alone, and one at
// images/ or streams/ stops it.
func (r *Repo) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	if !opts.DryRun {
		if err := r.writable(); err != nil {
			return nil, err
		}
	}
	unlock, err := r.Lock(ctx, !opts.DryRun)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &GCResult{DryRun: opts.DryRun, ImagesRemoved: []string{}, Leftovers: []string{}}
	streams, err := r.streamLinks()
	if err != nil {
		return nil, err
	}
	images, roots, err := r.gcRoots(opts.Roots, streams, res)
	if err != nil {
		return nil, err
	}
	live, err := r.liveObjects(ctx, roots, res)
	if err != nil {
		return nil, err
	}
	if err := r.liveStreams(ctx, opts.Roots, streams, live, res); err != nil {
		return nil, err
	}
	// Images first, then objects: a crash in between leaves only objects
	// nothing refers to.
	if err := r.removeImages(images, roots, live, opts.DryRun, res); err != nil {
		return nil, err
	}
	if err := r.sweepObjects(ctx, live, opts.DryRun, res); err != nil {
		return nil, err
	}
	if err := r.sweepTmp(opts.DryRun, res); err != nil {
		return nil, err
	}
	if err := r.pruneStreams(streams, live, opts.DryRun, res); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := r.sync(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// gcRoots returns the images linked under images/ and the roots of
// garbage collection among them: the images references point at, and
// those named in extra (but for names of streams); each with why it is
// kept.
func (r *Repo) gcRoots(extra, streams []string, res *GCResult) (images []string, roots map[string][]string, err error) {
	images, bad, err := r.readImageLinks()
	if err != nil {
		return nil, nil, err
	}
	refs, badRefs, err := r.readRefs()
	if err != nil {
		return nil, nil, err
	}
	for _, b := range append(bad, badRefs...) {
		res.Warnings = append(res.Warnings, b.path+": "+b.detail)
	}
	have := make(map[string]bool, len(images))
	for _, im := range images {
		have[im] = true
	}
	roots = make(map[string][]string) // image -> why kept
	for _, ref := range refs {
		if !have[ref.Image] {
			res.Warnings = append(res.Warnings, fmt.Sprintf("reference %s points at image %s, which is not there", ref.Name, ref.Image))
			continue
		}
		roots[ref.Image] = append(roots[ref.Image], "reference "+ref.Name)
	}
	for _, name := range extra {
		if slices.Contains(streams, name) {
			continue // a stream kept (liveStreams)
		}
		d, err := r.Resolve(name)
		if err != nil {
			return nil, nil, fmt.Errorf("repo: root %s: %w", name, err)
		}
		roots[d.Hex()] = append(roots[d.Hex()], "root "+name)
	}
	return images, roots, nil
}

// liveObjects returns the objects the root images keep: the images and
// the objects they refer to.
func (r *Repo) liveObjects(ctx context.Context, roots map[string][]string, res *GCResult) (map[digest.Digest]bool, error) {
	live := make(map[digest.Digest]bool)
	names := make([]string, 0, len(roots))
	for im := range roots {
		names = append(names, im)
	}
	sort.Strings(names)
	p := r.startProgress("reading images", int64(len(names)), false)
	defer p.finish()
	for _, im := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p.add(1)
		d, _ := r.ParseDigest(im)
		live[d] = true
		root, err := r.readImage(d)
		if errors.Is(err, fs.ErrNotExist) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("image %s (%s) is missing its object", im, strings.Join(roots[im], ", ")))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("repo: image %s (%s) can't be read, so what it refers to is not known; nothing removed (run fsck): %w", im, strings.Join(roots[im], ", "), err)
		}
		uses, problems := r.objectsOf(root)
		for _, u := range uses {
			live[u.digest] = true
		}
		for _, pr := range problems {
			res.Warnings = append(res.Warnings, "image "+im+": "+pr)
		}
	}
	return live, nil
}

// removeImages removes the image links that are not roots and whose image
// no split stream keeps (an OCI configuration's composefs.image.v1: as
// composefs-rs, which only prunes image links whose object is gone).
func (r *Repo) removeImages(images []string, roots map[string][]string, live map[digest.Digest]bool, dryRun bool, res *GCResult) error {
	var dir *beneath.Dir
	for _, im := range images {
		d, _ := r.ParseDigest(im)
		if _, ok := roots[im]; ok || live[d] {
			res.ImagesKept++
			continue
		}
		res.ImagesRemoved = append(res.ImagesRemoved, im)
		if dryRun {
			continue
		}
		if dir == nil {
			var err error
			if dir, err = r.root.Dir(imagesDir, false); err != nil {
				return fmt.Errorf("repo: %w", err)
			}
			defer dir.Close()
		}
		if err := dir.Remove(im); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("repo: %w", err)
		}
	}
	return nil
}

// pruneStreams removes the stream links whose object is not live.
func (r *Repo) pruneStreams(streams []string, live map[digest.Digest]bool, dryRun bool, res *GCResult) error {
	if len(streams) == 0 {
		return nil
	}
	dir, err := r.root.Dir(streamsDir, false)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	defer dir.Close()
	for _, name := range streams {
		if target, err := dir.Readlink(name); err == nil {
			rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
			if d, err := r.ParseObjectRel(rel); ok && err == nil && live[d] {
				continue
			}
		}
		res.StreamsPruned = append(res.StreamsPruned, streamsDir+"/"+name)
		if !dryRun {
			if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("repo: %w", err)
			}
		}
	}
	return nil
}

// streamLinks lists the names of the stream links (streams/NAME, not
// refs). streams/ is opened beneath the repository: a symbolic link there
// is an error.
func (r *Repo) streamLinks() ([]string, error) {
	dir, err := r.root.Dir(streamsDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	defer dir.Close()
	ents, err := dir.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Name != "refs" {
			names = append(names, e.Name)
		}
	}
	return names, nil
}

// sweepObjects removes the objects not in live. What is not an object
// (a symbolic link, a directory, a misnamed file) is reported and left
// alone.
func (r *Repo) sweepObjects(ctx context.Context, live map[digest.Digest]bool, dryRun bool, res *GCResult) error {
	p := r.startProgress("collecting objects", -1, false)
	defer p.finish()
	return r.st.Walk(ctx, func(e store.Entry) error {
		p.add(1)
		switch {
		case e.Problem != "":
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s/%s: %s; left alone", objectsDir, e.Path, e.Problem))
			return nil
		case live[e.Digest]:
			res.ObjectsKept++
			return nil
		}
		res.ObjectsRemoved++
		res.BytesRemoved += e.Size
		if dryRun {
			return nil
		}
		if err := r.st.Remove(e.Digest); err != nil {
			if errors.Is(err, store.ErrUnexpected) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s/%s: %v; left alone", objectsDir, e.Path, err))
				return nil
			}
			return fmt.Errorf("repo: %w", err)
		}
		return nil
	})
}

// sweepTmp removes everything under tmp/: with the lock held exclusively,
// no operation is under way, so all of it is left over. A tmp/ that is
// not a directory of the repository (a symbolic link) is reported and
// left alone, as is everything it leads to.
func (r *Repo) sweepTmp(dryRun bool, res *GCResult) error {
	if r.tmp == nil {
		if !errors.Is(r.tmpErr, fs.ErrNotExist) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %v; left alone", tmpDir, r.tmpErr))
		}
		return nil
	}
	ents, err := r.tmp.ReadDir()
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	for _, e := range ents {
		res.Leftovers = append(res.Leftovers, tmpDir+"/"+e.Name)
		if !dryRun {
			if err := r.tmp.RemoveAll(e.Name); err != nil {
				return fmt.Errorf("repo: %w", err)
			}
		}
	}
	return nil
}
