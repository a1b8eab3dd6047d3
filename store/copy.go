package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// kernelCopyMin is the size from which a file is copied by the kernel
// (reflink, else copy_file_range) and the copy measured afterwards;
// smaller files are read and written here, hashed as they are copied.
// (A variable for the tests.)
var kernelCopyMin int64 = 1 << 20

// parallelMin is the size from which the copy of a file is hashed by
// several goroutines.
const parallelMin = 16 << 20

// PutFile stores the content of src, a regular file open for reading
// (read from offset 0, whatever its file offset), and returns its
// digest: that of the bytes stored, measured from the stored copy where
// the kernel copied it (reflink or copy_file_range), else computed as
// they were copied. Holes stay holes (SEEK_DATA / SEEK_HOLE, and blocks
// of zeros read become holes).
//
// With want set, the content must have that digest: when the store has
// the object already, nothing is read; when the content read has another
// digest, nothing is stored and the error wraps ErrChanged. With size >=
// 0, the file must have that size (else ErrChanged too).
func (w *Writer) PutFile(src *os.File, want digest.Digest, size int64) (d digest.Digest, isNew bool, err error) {
	if !want.IsZero() {
		if err := w.s.checkAlg(want); err != nil {
			return digest.Digest{}, false, err
		}
		if ok, err := w.has(want); ok || err != nil {
			w.add(max(size, 0))
			return want, false, err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return digest.Digest{}, false, &os.PathError{Op: "stat", Path: src.Name(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return digest.Digest{}, false, fmt.Errorf("%w: %s is no longer a regular file", ErrChanged, src.Name())
	}
	if size >= 0 && st.Size != size {
		return digest.Digest{}, false, fmt.Errorf("%w: %s has %d bytes, %d expected", ErrChanged, src.Name(), st.Size, size)
	}
	if want.IsZero() {
		// Hashed before anything is written where that is cheap, so that
		// content the store has is not copied only to be dropped.
		if st.Size <= smallFileMax && st.Blocks*512 >= st.Size {
			return w.putSmall(src, &st)
		}
		if w.present.Load() > w.absent.Load() {
			if want, err = w.hashFirst(src, st.Size); err != nil {
				return digest.Digest{}, false, err
			}
			if ok, err := w.has(want); ok || err != nil {
				w.add(st.Size)
				return want, false, err
			}
		}
	}
	f, err := w.Create()
	if err != nil {
		return digest.Digest{}, false, err
	}
	d, err = f.copyFrom(src, &st)
	if err != nil {
		f.Abort()
		return digest.Digest{}, false, err
	}
	if !want.IsZero() && d != want {
		f.Abort()
		return digest.Digest{}, false, fmt.Errorf("%w: %s: its content has digest %s now, %s expected", ErrChanged, src.Name(), d, want)
	}
	isNew, err = w.queue(f.t, d, f.off)
	return d, isNew, err
}

// smallFileMax is the size up to which a file of no expected digest is
// read whole and hashed before it is written (the store's buffer size).
const smallFileMax = 256 << 10

// putSmall stores src, a file of status st of at most smallFileMax bytes
// without holes: read whole, hashed, written only if the store lacks it.
// Exactly st.Size bytes are read, in one system call where the kernel
// gives them (no read to find the end: the object is the bytes the
// status says the file has; a file that shrank is ErrChanged).
func (w *Writer) putSmall(src *os.File, st *unix.Stat_t) (digest.Digest, bool, error) {
	buf := w.s.buffer()
	defer w.s.putBuffer(buf)
	b := (*buf)[:st.Size]
	n, err := io.ReadFull(io.NewSectionReader(src, 0, st.Size), b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return digest.Digest{}, false, fmt.Errorf("store: reading %s: %w", src.Name(), err)
	}
	if int64(n) != st.Size {
		return digest.Digest{}, false, fmt.Errorf("%w: %s had %d bytes, then %d", ErrChanged, src.Name(), st.Size, n)
	}
	d, isNew, err := w.put(b[:n])
	if err == nil && !isNew {
		w.present.Add(1)
	} else if err == nil {
		w.absent.Add(1)
	}
	return d, isNew, err
}

// hashFirst returns the digest of src's first size bytes, read without
// storing them.
func (w *Writer) hashFirst(src *os.File, size int64) (digest.Digest, error) {
	workers := 1
	if size >= parallelMin {
		workers = min(w.s.opts.Threads, 8)
	}
	sum, err := fsverity.DigestReaderAt(context.Background(), src, size, w.s.alg, workers)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("store: reading %s: %w", src.Name(), err)
	}
	return digest.MustNew(w.s.alg, sum), nil
}

// copyFrom copies src, of status st, into f and returns the digest of
// what f holds.
func (f *File) copyFrom(src *os.File, st *unix.Stat_t) (digest.Digest, error) {
	s := f.w.s
	if st.Size >= kernelCopyMin {
		ok, err := f.kernelCopy(src, st.Size)
		if err != nil {
			return digest.Digest{}, err
		}
		if ok {
			f.w.add(st.Size)
			return f.measure()
		}
	}
	buf := s.buffer()
	defer s.putBuffer(buf)
	if err := f.readCopy(src, st, *buf); err != nil {
		return digest.Digest{}, err
	}
	if err := f.extend(); err != nil {
		return digest.Digest{}, err
	}
	return digest.MustNew(s.alg, f.h.Sum(nil)), nil
}

// kernelCopy has the kernel copy size bytes of src into f: a reflink
// where the file system shares extents, else copy_file_range over the
// data segments (holes stay holes). ok is false when the file system can
// do neither (f is left empty).
func (f *File) kernelCopy(src *os.File, size int64) (ok bool, err error) {
	s := f.w.s
	in, out := int(src.Fd()), int(f.t.f.Fd())
	if !s.noClone.Load() {
		err := unix.IoctlFileClone(out, in)
		if err == nil {
			f.off, f.end = size, size
			return true, f.checkSize(src, size)
		}
		if fsUnsupported(err) { // the same for every file of the store
			s.noClone.Store(true)
		}
	}
	if s.noCopyRange.Load() {
		return false, nil
	}
	copied := int64(0)
	err = forData(src, size, func(off, n int64) error {
		for n > 0 {
			o1, o2 := off, off
			k, err := unix.CopyFileRange(in, &o1, out, &o2, int(min(n, 1<<30)), 0)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				return err
			case k == 0:
				return fmt.Errorf("%w: %s ended at %d bytes, %d expected", ErrChanged, src.Name(), off, size)
			}
			off += int64(k)
			n -= int64(k)
			copied += int64(k)
		}
		return nil
	})
	if err != nil && copied == 0 && isUnsupported(err) {
		if fsUnsupported(err) {
			s.noCopyRange.Store(true)
		}
		if terr := f.t.f.Truncate(0); terr != nil {
			return false, fmt.Errorf("store: %w", terr)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: copying %s: %w", src.Name(), err)
	}
	f.off = size
	if err := f.extend(); err != nil {
		return false, err
	}
	return true, f.checkSize(src, size)
}

// isUnsupported tells the errors of copy_file_range that mean "not
// between these files": the caller copies by reading and writing.
func isUnsupported(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.ENOSYS)
}

// fsUnsupported tells the errors that say the file system (or the
// kernel) can't do it at all, as opposed to not between these two files
// (EXDEV: another file system; EINVAL: this file).
func fsUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS)
}

// checkSize fails when src no longer has size bytes.
func (f *File) checkSize(src *os.File, size int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return &os.PathError{Op: "stat", Path: src.Name(), Err: err}
	}
	if st.Size != size {
		return fmt.Errorf("%w: %s changed size while being copied (%d bytes, then %d)", ErrChanged, src.Name(), size, st.Size)
	}
	return nil
}

// measure computes the digest of what f holds, reading it back (in
// parallel when it is large).
func (f *File) measure() (digest.Digest, error) {
	workers := 1
	if f.off >= parallelMin {
		workers = min(f.w.s.opts.Threads, 8)
	}
	sum, err := fsverity.DigestReaderAt(context.Background(), f.t.f, f.off, f.w.s.alg, workers)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("store: reading back a copy: %w", err)
	}
	return digest.MustNew(f.w.s.alg, sum), nil
}

// readCopy copies src into f by reading and writing, hashing what it
// reads. The holes of a sparse source are not read (they are hashed as
// the zeros they hold).
func (f *File) readCopy(src *os.File, st *unix.Stat_t, buf []byte) error {
	pos := int64(0)
	copyData := func(off, n int64) error {
		if err := f.zeros(off - pos); err != nil {
			return err
		}
		for n > 0 {
			k, err := src.ReadAt(buf[:min(int64(len(buf)), n)], off)
			if k > 0 {
				if _, werr := f.Write(buf[:k]); werr != nil {
					return werr
				}
			}
			off += int64(k)
			n -= int64(k)
			switch {
			case err == io.EOF && n > 0:
				return fmt.Errorf("%w: %s ended at %d bytes, %d expected", ErrChanged, src.Name(), off, st.Size)
			case err != nil && err != io.EOF:
				return fmt.Errorf("store: reading %s: %w", src.Name(), err)
			}
		}
		pos = off
		return nil
	}
	var err error
	if st.Blocks*512 < st.Size { // holes, or inline data: ask where the data is
		err = forData(src, st.Size, copyData)
	} else {
		err = copyData(0, st.Size)
	}
	if err == nil {
		err = f.zeros(st.Size - pos)
	}
	if err == nil {
		// Content past the size stat gave: the file grew.
		var one [1]byte
		if k, _ := src.ReadAt(one[:], st.Size); k > 0 {
			err = fmt.Errorf("%w: %s grew while being copied (beyond %d bytes)", ErrChanged, src.Name(), st.Size)
		}
	}
	return err
}

// zeros adds n zero bytes to f: a hole, hashed.
func (f *File) zeros(n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBuf)))
		if _, err := f.Write(zeroBuf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// forData calls fn for each data segment of the first size bytes of src,
// in order: SEEK_DATA and SEEK_HOLE where the file system tells them,
// else the whole file as one segment.
func forData(src *os.File, size int64, fn func(off, n int64) error) error {
	fd := int(src.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // a hole up to the end
		}
		if err != nil {
			if off == 0 {
				return fn(0, size) // no SEEK_DATA: one segment
			}
			return fmt.Errorf("store: %s: SEEK_DATA: %w", src.Name(), err)
		}
		if data >= size {
			return nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("store: %s: SEEK_HOLE: %w", src.Name(), err)
		}
		hole = min(hole, size)
		if err := fn(data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}
