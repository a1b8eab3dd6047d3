package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo/splitstream"
)

// maxStreamLinks bounds the links followed from streams/NAME to its
// object (a named stream's link points at the stream's own link).
const maxStreamLinks = 8

// Cat writes to w the content the split stream called name holds, rebuilt:
// inline data and the objects it refers to, in order (cfsctl cat). name is
// what cfsctl takes: the stream's content identifier (streams/NAME) or
// refs/NAME for a named stream (streams/refs/NAME). Every object, the
// stream's own included, is checked against its digest before anything is
// written, so a corrupt or missing object fails the call with nothing
// written. A name that is not a stream but an object's digest (hex, or
// "sha256:HEX" as cfsctl prints object IDs) writes that object's content,
// checked likewise. The repository lock is held shared.
func (r *Repo) Cat(ctx context.Context, name string, w io.Writer) error {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := r.streamObject(name)
	if errors.Is(err, fs.ErrNotExist) {
		if od, ok := r.objectID(name); ok {
			return r.catObject(od, w)
		}
		return fmt.Errorf("%w: no stream %s/%s", ErrNotFound, streamsDir, name)
	}
	if err != nil {
		return err
	}
	f, err := r.openChecked(d)
	if err != nil {
		return fmt.Errorf("repo: stream %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	sr, err := splitstream.NewReader(f, st.Size(), splitstream.WithAlgorithm(r.alg))
	if err != nil {
		return fmt.Errorf("repo: stream %s (%s): %w", name, r.ObjectPath(d), err)
	}
	defer sr.Close()
	checked := make(map[digest.Digest]bool)
	for _, o := range sr.ObjectRefs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := r.openChecked(o)
		if err != nil {
			return fmt.Errorf("repo: stream %s: %w", name, err)
		}
		f.Close()
		checked[o] = true
	}
	open := func(o digest.Digest) (io.ReadCloser, error) {
		if !checked[o] {
			return nil, fmt.Errorf("%w: the stream refers to object %s, which is not among its object references", splitstream.ErrCorrupt, o)
		}
		return r.st.OpenObject(o)
	}
	if _, err := sr.Reassemble(w, open); err != nil {
		return fmt.Errorf("repo: stream %s: %w", name, err)
	}
	return nil
}

// streamObject returns the digest of the object that streams/name links
// to, following links within streams/ (a named stream's link points at
// the stream's own). The error wraps fs.ErrNotExist when there is no
// such stream.
func (r *Repo) streamObject(name string) (digest.Digest, error) {
	if err := CheckRefName(name); err != nil {
		return digest.Digest{}, fmt.Errorf("stream name %q: %w", name, err)
	}
	rel := streamsDir + "/" + name
	for range maxStreamLinks {
		target, err := r.readlink(rel)
		if err != nil {
			return digest.Digest{}, fmt.Errorf("repo: %s: %w", rel, err)
		}
		next := path.Join(path.Dir(rel), target)
		switch {
		case path.IsAbs(target):
		case strings.HasPrefix(next, objectsDir+"/"):
			return r.ParseObjectRel(strings.TrimPrefix(next, objectsDir+"/"))
		case strings.HasPrefix(next, streamsDir+"/"):
			rel = next
			continue
		}
		return digest.Digest{}, fmt.Errorf("repo: %s points at %q, outside the repository's streams and objects", rel, target)
	}
	return digest.Digest{}, fmt.Errorf("repo: %s/%s: more than %d links", streamsDir, name, maxStreamLinks)
}

// objectID parses name as an object's digest: hex of the repository's
// algorithm, or cfsctl's "ALG:HEX".
func (r *Repo) objectID(name string) (digest.Digest, bool) {
	if alg, hex, ok := strings.Cut(name, ":"); ok {
		if alg != r.alg.String() {
			return digest.Digest{}, false
		}
		name = hex
	}
	d, err := digest.ParseAlg(name, r.alg)
	return d, err == nil
}

// catObject writes object d's content to w, checked first.
func (r *Repo) catObject(d digest.Digest, w io.Writer) error {
	f, err := r.openChecked(d)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, onlyReader{f}); err != nil {
		return fmt.Errorf("repo: %s: %w", f.Name(), err)
	}
	return nil
}

// openChecked opens object d, checked against its digest (measured by
// the kernel where it has fs-verity, else computed), at offset 0.
func (r *Repo) openChecked(d digest.Digest) (*os.File, error) {
	f, err := r.st.OpenObject(d)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: object %s is missing", ErrNotFound, d)
		}
		return nil, fmt.Errorf("repo: %w", err)
	}
	got, _, err := fsverity.MeasureOrCompute(f, d.Algorithm())
	if err == nil && !d.Equal(d.Algorithm(), got) {
		err = fmt.Errorf("%w: %s has digest %s", ErrCorrupt, f.Name(), fsverity.Hex(got))
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("repo: %w", err)
	}
	return f, nil
}
