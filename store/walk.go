package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
)

// Entry is what Walk finds in the store: an object, or something that
// has no business there.
type Entry struct {
	// Path is the entry's path relative to the store ("XX/REST" for an
	// object).
	Path string
	// Digest is the object's digest; zero when Problem is set.
	Digest digest.Digest
	// Size is the object's size in bytes.
	Size int64
	// Problem says what is wrong with an entry that is not an object
	// ("" for an object).
	Problem string
}

// Walk calls fn for every object of the store and for everything else
// found there (Entry.Problem set): a fan-out entry that is not a
// directory named by two hex digits (a symbolic link is reported, never
// followed), a name that is not the rest of a digest of the store's
// algorithm, an object that is not a regular file. The fan-out
// directories are visited in directory order, and fn may remove the
// entry it is given. An error from fn stops the walk.
func (s *Store) Walk(ctx context.Context, fn func(Entry) error) error {
	if s.dir == nil {
		return nil
	}
	fanout, err := s.dir.ReadDir()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, fe := range fanout {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.ownTmp && fe.Name == ".tmp" {
			continue // this store's own temporary directory
		}
		if problem := fanoutProblem(fe); problem != "" {
			if err := fn(Entry{Path: fe.Name, Problem: problem}); err != nil {
				return err
			}
			continue
		}
		if err := s.walkFanout(fe.Name, fn); err != nil {
			return err
		}
	}
	return nil
}

// fanoutProblem says what is wrong with a fan-out entry, "" if nothing.
func fanoutProblem(e beneath.Entry) string {
	switch {
	case e.Type&fs.ModeSymlink != 0:
		return "a symbolic link, not an object directory (XX)"
	case !e.Type.IsDir() || !digest.IsHex(e.Name, 2):
		return "not an object directory (XX)"
	}
	return ""
}

// walkFanout walks the fan-out directory xx.
func (s *Store) walkFanout(xx string, fn func(Entry) error) error {
	dir, err := s.dir.Dir(xx, false)
	if err != nil {
		if errors.Is(err, beneath.ErrSymlink) { // replaced since it was listed
			return fn(Entry{Path: xx, Problem: "a symbolic link, not an object directory (XX)"})
		}
		return fmt.Errorf("store: %w", err)
	}
	defer dir.Close()
	ents, err := dir.ReadDir()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	n := 2*s.alg.Size() - 2
	for _, e := range ents {
		ent := Entry{Path: xx + "/" + e.Name}
		switch {
		case !digest.IsHex(e.Name, n):
			ent.Problem = "not named by a " + s.alg.String() + " digest"
		case e.Type&fs.ModeSymlink != 0:
			ent.Problem = "a symbolic link, not an object"
		case !e.Type.IsRegular():
			ent.Problem = "not a regular file"
		default:
			ent.Digest, _ = digest.ParseAlg(xx+e.Name, s.alg)
			if st, err := dir.Lstat(e.Name); err == nil {
				ent.Size = st.Size
			}
		}
		if err := fn(ent); err != nil {
			return err
		}
	}
	return nil
}

// Remove removes d's object. Only a regular file is removed, from the
// fan-out directory reached through no symbolic link; anything else is an
// error wrapping ErrUnexpected. A missing object is no error.
func (s *Store) Remove(d digest.Digest) error {
	if err := s.checkAlg(d); err != nil {
		return err
	}
	if s.dir == nil {
		return nil
	}
	rel := d.ObjectPath()
	dir, err := s.dir.Dir(rel[:2], false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		if errors.Is(err, beneath.ErrSymlink) {
			return fmt.Errorf("%w: %w", ErrUnexpected, err)
		}
		return fmt.Errorf("store: %w", err)
	}
	defer dir.Close()
	st, err := dir.Lstat(rel[3:])
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %s is not a regular file; left alone", ErrUnexpected, dir.Join(rel[3:]))
	}
	if err := dir.Remove(rel[3:]); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// CheckResult is what Check found of one object.
type CheckResult struct {
	// Read is the bytes read to compute the digest (0 when the kernel
	// measured it).
	Read int64
	// Measured tells that the kernel measured the digest (fs-verity is
	// enabled on the object).
	Measured bool
	// Err is what is wrong with the object, nil if nothing: it wraps
	// ErrCorrupt for content of another digest, ErrNoVerity for an
	// object without fs-verity in a store that requires it,
	// ErrUnexpected for something that is not a regular file, and is
	// any other error for an object that can't be read.
	Err error
}

// Check checks that d's object has the content its name says: the
// kernel's measurement where fs-verity is enabled, else the digest of its
// content, read with buf. progress, when not nil, is told of the bytes
// checked.
func (s *Store) Check(d digest.Digest, buf []byte, progress func(int64)) CheckResult {
	f, err := s.OpenObject(d)
	if err != nil {
		return CheckResult{Err: err}
	}
	defer f.Close()
	if alg, got, err := fsverity.Measure(f); err == nil {
		st, _ := f.Stat()
		if progress != nil && st != nil {
			progress(st.Size())
		}
		if !d.Equal(alg, got) {
			return CheckResult{Measured: true, Err: fmt.Errorf("%w: the kernel measured fs-verity digest %s:%s", ErrCorrupt, alg, fsverity.Hex(got))}
		}
		return CheckResult{Measured: true}
	} else if s.opts.RequireVerity && errors.Is(err, fsverity.ErrNotEnabled) {
		res := s.compute(f, d, buf, progress)
		if res.Err == nil {
			res.Err = ErrNoVerity
		}
		return res
	}
	return s.compute(f, d, buf, progress)
}

// compute checks f's content against d by hashing it.
func (s *Store) compute(f *os.File, d digest.Digest, buf []byte, progress func(int64)) CheckResult {
	h := fsverity.New(s.alg)
	n, err := io.CopyBuffer(progressWriter{h, progress}, onlyReader{f}, buf)
	if err != nil {
		return CheckResult{Read: n, Err: fmt.Errorf("store: reading %s: %w", f.Name(), err)}
	}
	if got := h.Sum(nil); !d.Equal(s.alg, got) {
		return CheckResult{Read: n, Err: fmt.Errorf("%w: content has digest %s", ErrCorrupt, fsverity.Hex(got))}
	}
	return CheckResult{Read: n}
}

// progressWriter counts what goes through it.
type progressWriter struct {
	w io.Writer
	p func(int64)
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	if pw.p != nil {
		pw.p(int64(n))
	}
	return n, err
}

// onlyReader hides WriterTo so that io.CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }
