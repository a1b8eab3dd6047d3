package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gocfs/gocfs/fsverity"
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
// GC refuses to run on a repository holding split streams that no
// registered StreamKeeper owns (ErrStreams: composefs-rs's, whose
// references to objects it does not follow), and stops without removing
// anything if an image it must keep can't be read.
func (r *Repo) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	if !opts.DryRun {
		if err := r.writable(); err != nil {
			return nil, err
		}
	}
	unlock, err := r.lock(!opts.DryRun)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &GCResult{DryRun: opts.DryRun, ImagesRemoved: []string{}, Leftovers: []string{}}

	streams, err := r.streamLinks()
	if err != nil {
		return nil, err
	}
	keepers, err := keepersFor(streams)
	if err != nil {
		return nil, err
	}
	images, bad, err := r.readImageLinks()
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		res.Warnings = append(res.Warnings, b.path+": "+b.detail)
	}
	refs, bad, err := r.readRefs()
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		res.Warnings = append(res.Warnings, b.path+": "+b.detail)
	}
	have := make(map[string]bool, len(images))
	for _, im := range images {
		have[im] = true
	}
	roots := make(map[string][]string) // image -> why kept
	for _, ref := range refs {
		if !have[ref.Image] {
			res.Warnings = append(res.Warnings, fmt.Sprintf("reference %s points at image %s, which is not there", ref.Name, ref.Image))
			continue
		}
		roots[ref.Image] = append(roots[ref.Image], "reference "+ref.Name)
	}
	for _, name := range opts.Roots {
		d, err := r.Resolve(name)
		if err != nil {
			return nil, fmt.Errorf("repo: root %s: %w", name, err)
		}
		roots[fsverity.Hex(d)] = append(roots[fsverity.Hex(d)], "root "+name)
	}

	live := make(map[string]bool)
	for _, k := range keepers {
		objs, err := k.Live(r)
		if err != nil {
			return nil, fmt.Errorf("repo: finding what split streams need; nothing removed: %w", err)
		}
		for _, d := range objs {
			live[ObjectRel(d)] = true
		}
	}
	rootNames := make([]string, 0, len(roots))
	for im := range roots {
		rootNames = append(rootNames, im)
	}
	sort.Strings(rootNames)
	p := r.startProgress("reading images", int64(len(rootNames)), false)
	for _, im := range rootNames {
		if err := ctx.Err(); err != nil {
			p.finish()
			return nil, err
		}
		d, _ := r.ParseDigest(im)
		live[ObjectRel(d)] = true
		root, err := r.readImage(d)
		if errors.Is(err, fs.ErrNotExist) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("image %s (%s) is missing its object", im, strings.Join(roots[im], ", ")))
			p.add(1)
			continue
		}
		if err != nil {
			p.finish()
			return nil, fmt.Errorf("repo: image %s (%s) can't be read, so what it refers to is not known; nothing removed (run fsck): %w", im, strings.Join(roots[im], ", "), err)
		}
		uses, problems := r.objectsOf(root)
		for _, u := range uses {
			live[u.rel] = true
		}
		for _, pr := range problems {
			res.Warnings = append(res.Warnings, "image "+im+": "+pr)
		}
		p.add(1)
	}
	p.finish()

	// Images first, then objects: a crash in between leaves only objects
	// nothing refers to.
	for _, im := range images {
		if _, ok := roots[im]; ok {
			res.ImagesKept++
			continue
		}
		res.ImagesRemoved = append(res.ImagesRemoved, im)
		if !opts.DryRun {
			if err := os.Remove(filepath.Join(r.dir, imagesDir, im)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("repo: %w", err)
			}
		}
	}
	if err := r.sweepObjects(ctx, live, opts.DryRun, res); err != nil {
		return nil, err
	}
	if err := r.sweepTmp(opts.DryRun, res); err != nil {
		return nil, err
	}
	for _, name := range streams {
		path := filepath.Join(r.dir, streamsDir, name)
		if target, err := os.Readlink(path); err == nil {
			rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
			if ok && live[rel] {
				continue
			}
		}
		res.StreamsPruned = append(res.StreamsPruned, streamsDir+"/"+name)
		if !opts.DryRun {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("repo: %w", err)
			}
		}
	}
	if !opts.DryRun {
		if err := r.sync(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// A StreamKeeper lets garbage collection keep what split streams need.
// gocfs's repository commands know images only; a package that stores
// split streams under streams/ (and objects they refer to) registers a
// keeper for the streams it owns. GC refuses a repository with streams
// that no keeper owns.
type StreamKeeper struct {
	// Owns reports whether streams/NAME is one of the keeper's streams.
	Owns func(name string) bool
	// Live returns every object the keeper's live streams need, the
	// streams' own objects included: those reachable from its references
	// under streams/refs/. It is called with the repository locked
	// exclusively, so it must not call Repo methods that lock it.
	// Stream links (streams/NAME) whose object is not kept are removed.
	Live func(r *Repo) ([][]byte, error)
	// Refs, when not nil, returns the digests of the objects that the
	// stream streams/NAME, whose own object has the given digest, refers
	// to (other streams' objects included). Fsck checks that each is
	// there and intact, and reports the stream damaged otherwise; an
	// error reports it invalid. It is called with the repository locked
	// shared, so it must not call Repo methods that lock it.
	Refs func(r *Repo, name string, digest []byte) ([][]byte, error)
}

var (
	keepersMu sync.Mutex
	keepers   []StreamKeeper
)

// RegisterStreamKeeper registers k for every later garbage collection.
func RegisterStreamKeeper(k StreamKeeper) {
	keepersMu.Lock()
	defer keepersMu.Unlock()
	keepers = append(keepers, k)
}

// keepersFor returns the keepers owning the streams, or ErrStreams if one
// is owned by none.
func keepersFor(streams []string) ([]StreamKeeper, error) {
	keepersMu.Lock()
	defer keepersMu.Unlock()
	var out []StreamKeeper
	used := make([]bool, len(keepers))
	for _, name := range streams {
		owned := false
		for i, k := range keepers {
			if k.Owns(name) {
				owned = true
				if !used[i] {
					used[i] = true
					out = append(out, k)
				}
				break
			}
		}
		if !owned {
			return nil, fmt.Errorf("%w (%s/%s): gocfs does not follow their references to objects; collect garbage with cfsctl gc", ErrStreams, streamsDir, name)
		}
	}
	return out, nil
}

// keeperOf returns the keeper owning streams/NAME, if any.
func keeperOf(name string) (StreamKeeper, bool) {
	keepersMu.Lock()
	defer keepersMu.Unlock()
	for _, k := range keepers {
		if k.Owns(name) {
			return k, true
		}
	}
	return StreamKeeper{}, false
}

// streamLinks lists the names of the stream links (streams/NAME, not
// refs).
func (r *Repo) streamLinks() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.dir, streamsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "refs" {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// isObjectTmp reports whether name, in an objects/XX directory, is a
// temporary file of the store package (mkcomposefs --digest-store).
func isObjectTmp(name string) bool { return strings.HasPrefix(name, ".tmp-") }

// sweepObjects removes the objects not in live, and temporary files.
func (r *Repo) sweepObjects(ctx context.Context, live map[string]bool, dryRun bool, res *GCResult) error {
	top := r.ObjectsDir()
	fanout, err := os.ReadDir(top)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	n := 2*r.alg.Size() - 2
	p := r.startProgress("collecting objects", int64(len(fanout)), false)
	defer p.finish()
	for _, fd := range fanout {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.add(1)
		if !fd.IsDir() || !isHex(fd.Name(), 2) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s/%s: unexpected in the object store", objectsDir, fd.Name()))
			continue
		}
		dir := filepath.Join(top, fd.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("repo: %w", err)
		}
		for _, e := range ents {
			rel := fd.Name() + "/" + e.Name()
			switch {
			case isHex(e.Name(), n):
				if live[rel] {
					res.ObjectsKept++
					continue
				}
				if fi, err := e.Info(); err == nil {
					res.BytesRemoved += fi.Size()
				}
				res.ObjectsRemoved++
			case isObjectTmp(e.Name()):
				res.Leftovers = append(res.Leftovers, objectsDir+"/"+rel)
			default:
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s/%s: unexpected in the object store", objectsDir, rel))
				continue
			}
			if !dryRun {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("repo: %w", err)
				}
			}
		}
	}
	return nil
}

// sweepTmp removes everything under tmp/: with the lock held exclusively,
// no operation is under way, so all of it is left over.
func (r *Repo) sweepTmp(dryRun bool, res *GCResult) error {
	top := filepath.Join(r.dir, tmpDir)
	ents, err := os.ReadDir(top)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	for _, e := range ents {
		res.Leftovers = append(res.Leftovers, tmpDir+"/"+e.Name())
		if !dryRun {
			if err := os.RemoveAll(filepath.Join(top, e.Name())); err != nil {
				return fmt.Errorf("repo: %w", err)
			}
		}
	}
	return nil
}
