package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/gocfs/gocfs/digest"
)

// liveStreams adds to live the split streams to keep and everything they
// keep alive, as composefs-rs's garbage collection finds them: the roots
// are the streams the stream references (streams/refs/...) point at and
// those named in extra; each keeps its own object, the objects it refers
// to and, transitively, the streams its named references name. A stream
// that can't be read stops garbage collection (what it keeps is not
// known); one whose object is missing is a warning.
func (r *Repo) liveStreams(ctx context.Context, extra, streams []string, live map[digest.Digest]bool, res *GCResult) error {
	var todo []digest.Digest
	var why []string
	refs, err := r.StreamRefs("")
	if err != nil {
		return err
	}
	for _, ref := range refs {
		target, err := r.readlink(streamRefsDir + "/" + ref)
		if err != nil {
			return fmt.Errorf("repo: %s/%s: %w", streamRefsDir, ref, err)
		}
		stream, err := parseStreamRefTarget(ref, target)
		if err != nil {
			res.Warnings = append(res.Warnings, err.Error())
			continue
		}
		d, err := r.ResolveStream(stream)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("stream reference %s: %v", ref, err))
			continue
		}
		todo, why = append(todo, d), append(why, "stream reference "+ref)
	}
	for _, name := range extra {
		if !slices.Contains(streams, name) {
			continue
		}
		d, err := r.ResolveStream(name)
		if err != nil {
			return fmt.Errorf("repo: root %s: %w", name, err)
		}
		todo, why = append(todo, d), append(why, "root "+name)
	}
	known, err := r.streamDigests(streams)
	if err != nil {
		return err
	}
	walked := make(map[digest.Digest]bool)
	for i, d := range todo {
		if err := r.walkStream(ctx, d, why[i], known, walked, live, res); err != nil {
			return err
		}
	}
	return nil
}

// streamDigests returns the digests of the streams streams/NAME.
func (r *Repo) streamDigests(streams []string) (map[digest.Digest]bool, error) {
	known := make(map[digest.Digest]bool, len(streams))
	for _, name := range streams {
		target, err := r.readlink(streamsDir + "/" + name)
		if err != nil {
			continue // not a link: fsck reports it
		}
		rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
		if d, err := r.ParseObjectRel(rel); ok && err == nil {
			known[d] = true
		}
	}
	return known, nil
}

// walkStream keeps the stream d and what it keeps alive. A digest a named
// reference gives is kept, and walked as a stream only if it is one of
// the repository's (streams/NAME): as in composefs-rs, named references
// also keep objects that are not streams, such as an OCI configuration's
// EROFS image ("composefs.image.v1").
func (r *Repo) walkStream(ctx context.Context, d digest.Digest, why string, known, walked, live map[digest.Digest]bool, res *GCResult) error {
	todo := []digest.Digest{d}
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		live[d] = true
		if walked[d] {
			continue
		}
		walked[d] = true
		objects, streams, err := r.StreamLinks(d)
		if errors.Is(err, fs.ErrNotExist) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("split stream %s (kept by %s) is missing its object", d, why))
			continue
		}
		if err != nil {
			return fmt.Errorf("repo: split stream %s (kept by %s) can't be read, so what it refers to is not known; nothing removed (run fsck): %w", d, why, err)
		}
		for _, o := range objects {
			live[o] = true
		}
		for _, s := range streams {
			live[s] = true
			if known[s] {
				todo = append(todo, s)
			}
		}
	}
	return nil
}
