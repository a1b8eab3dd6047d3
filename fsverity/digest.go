package fsverity

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// readBufSize is the size of the buffers the sequential functions read
// into: a multiple of BlockSize, large enough to make read system calls
// cheap, small enough to stay in the CPU caches.
const readBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, readBufSize)
	return &b
}}

// hasherPools[alg] holds idle Hashers, so that digesting many small files
// does not allocate new block buffers every time.
var hasherPools [SHA512 + 1]sync.Pool

// getHasher returns a reset Hasher for alg, which must be valid.
func getHasher(alg Algorithm) *Hasher {
	if h, ok := hasherPools[alg].Get().(*Hasher); ok {
		h.Reset()
		return h
	}
	return New(alg)
}

func putHasher(h *Hasher) { hasherPools[h.alg].Put(h) }

// fileError is an error about a named file. Its message is
// "fsverity: OP PATH: KIND: ERR", and it unwraps to both KIND (a sentinel
// error of this package, if any) and ERR (the cause, such as a
// syscall.Errno).
type fileError struct {
	op, path string
	kind     error
	err      error
}

func (e *fileError) Error() string {
	var b strings.Builder
	b.WriteString("fsverity: ")
	b.WriteString(e.op)
	b.WriteByte(' ')
	b.WriteString(e.path)
	if e.kind != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.kind.Error(), "fsverity: "))
	}
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

func (e *fileError) Unwrap() []error {
	switch {
	case e.kind == nil:
		return []error{e.err}
	case e.err == nil:
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

// newFileError returns a fileError for op on path. An *fs.PathError for the
// same path is replaced by its cause, so that the path is not named twice.
func newFileError(op, path string, kind, err error) error {
	if pe, ok := err.(*fs.PathError); ok && pe.Path == path {
		err = pe.Err
	}
	return &fileError{op: op, path: path, kind: kind, err: err}
}

// fill reads from r until buf is full or r returns an error, which may be
// io.EOF.
func fill(r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

// copyInto writes everything r yields, up to io.EOF, into h, reading into
// buf (whose length should be a multiple of BlockSize, so that the Hasher
// does not need to copy), and checking ctx between reads.
func copyInto(ctx context.Context, h *Hasher, r io.Reader, buf []byte) error {
	for {
		if ctx.Done() != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		n, err := fill(r, buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Digest returns the fs-verity digest, computed with alg, of everything r
// yields up to io.EOF. Errors from r are returned wrapped.
func Digest(r io.Reader, alg Algorithm) ([]byte, error) {
	if err := alg.check(); err != nil {
		return nil, err
	}
	h := getHasher(alg)
	defer putHasher(h)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if err := copyInto(context.Background(), h, r, *bp); err != nil {
		return nil, fmt.Errorf("fsverity: read: %w", err)
	}
	return h.Sum(make([]byte, 0, h.Size())), nil
}

// DigestFile returns the fs-verity digest, computed with alg, of the
// regular file at path: the digest that FS_IOC_MEASURE_VERITY would report
// after fs-verity is enabled on it with alg. The file is opened read-only
// and close-on-exec, and read sequentially to its end. A path naming
// anything but a regular file (after following symbolic links) gives an
// error wrapping [ErrNotRegular]; opening a FIFO does not block. Errors name
// the path.
func DigestFile(path string, alg Algorithm) ([]byte, error) {
	if err := alg.check(); err != nil {
		return nil, err
	}
	h := getHasher(alg)
	defer putHasher(h)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return digestFile(context.Background(), h, *bp, path)
}

// digestFile digests the file at path with h, which it resets first.
func digestFile(ctx context.Context, h *Hasher, buf []byte, path string) ([]byte, error) {
	h.Reset()
	f, _, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := copyInto(ctx, h, f, buf); err != nil {
		return nil, newFileError("read", path, nil, err)
	}
	return h.Sum(make([]byte, 0, h.Size())), nil
}

// DigestFiles computes the fs-verity digests of the regular files named by
// paths, with alg, using up to workers goroutines (runtime.NumCPU() if
// workers <= 0), each digesting one file at a time as [DigestFile] does.
//
// For each file it digests, DigestFiles calls fn with the file's index in
// paths and either its digest (a new slice that fn may keep) or an error
// naming the path. Calls to fn never overlap, but they come from several
// goroutines and in no particular order. DigestFiles returns once every call
// has returned.
//
// If ctx is canceled, DigestFiles starts no more files; a file being read
// is abandoned and reported to fn with an error wrapping ctx.Err(), the
// files not started are not reported, and DigestFiles returns ctx.Err().
// Otherwise (every file digested, or failed for reasons of its own) it
// returns nil: errors about single files go only to fn. An unknown alg
// gives an error wrapping [ErrUnknownAlgorithm] before any work.
func DigestFiles(ctx context.Context, paths []string, alg Algorithm, workers int, fn func(i int, digest []byte, err error)) error {
	if err := alg.check(); err != nil {
		return err
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, len(paths))
	var (
		next, done  atomic.Int64
		interrupted atomic.Bool
		mu          sync.Mutex
		wg          sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			h := getHasher(alg)
			defer putHasher(h)
			bp := bufPool.Get().(*[]byte)
			defer bufPool.Put(bp)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				d, err := digestFile(ctx, h, *bp, paths[i])
				if err != nil && ctx.Err() != nil {
					interrupted.Store(true)
				}
				mu.Lock()
				fn(i, d, err)
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if int(done.Load()) < len(paths) || interrupted.Load() {
		return ctx.Err()
	}
	return nil
}

// chunkResult is what a worker of digestReaderAt reports for one chunk.
type chunkResult struct {
	// full is set for a chunk of exactly BlockSize/digestSize data blocks
	// (the last one perhaps zero-padded): their digests fill one level-0 hash
	// block, whose digest is top.
	full bool
	top  [MaxDigestSize]byte
	// partial holds the digests of the data blocks of a shorter, last
	// chunk.
	partial []byte
	err     error
}

// chunker hashes chunks of an io.ReaderAt. Each goroutine has its own.
type chunker struct {
	r      io.ReaderAt
	size   int64
	chunk  int64 // bytes per chunk
	h      *Hasher
	buf    []byte
	hashes [BlockSize]byte
}

func newChunker(r io.ReaderAt, size int64, alg Algorithm) *chunker {
	ds := alg.Size()
	c := &chunker{r: r, size: size, chunk: int64(BlockSize/ds) * BlockSize, h: New(alg)}
	c.buf = make([]byte, c.chunk)
	return c
}

// hash reads and hashes chunk k.
func (c *chunker) hash(k int64) (res chunkResult) {
	off := k * c.chunk
	m := min(c.chunk, c.size-off)
	n, err := c.r.ReadAt(c.buf[:m], off)
	if int64(n) < m {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("short read at offset %d (file shrank?): %w", off+int64(n), io.ErrUnexpectedEOF)
		}
		res.err = err
		return res
	}
	// ReadAt may return io.EOF along with a full buffer: that is success.
	nb := int((m + BlockSize - 1) / BlockSize)
	clear(c.buf[m : int64(nb)*BlockSize])
	ds := c.h.ds
	c.h.hashBlocks(c.hashes[:nb*ds], c.buf[:nb*BlockSize])
	if nb*ds == BlockSize {
		res.full = true
		c.h.hashBlock(res.top[:], c.hashes[:])
	} else {
		res.partial = append([]byte(nil), c.hashes[:nb*ds]...)
	}
	return res
}

// DigestReaderAt returns the fs-verity digest, computed with alg, of the
// first size bytes of r, hashing chunks of the data on up to workers
// goroutines at once (runtime.NumCPU() if workers <= 0). The digest is the
// same as the sequential functions give; the work is split into chunks of
// 128 (SHA-256) or 64 (SHA-512) data blocks, 512 KiB or 256 KiB, which are
// read with ReadAt concurrently and combined in order, so memory use is a
// few chunks per worker whatever the size.
//
// If r yields fewer than size bytes, the error wraps io.ErrUnexpectedEOF;
// data past size is ignored. If ctx is canceled, the error wraps ctx.Err().
func DigestReaderAt(ctx context.Context, r io.ReaderAt, size int64, alg Algorithm, workers int) ([]byte, error) {
	if err := alg.check(); err != nil {
		return nil, err
	}
	d, err := digestReaderAt(ctx, r, size, alg, workers)
	if err != nil {
		return nil, fmt.Errorf("fsverity: %w", err)
	}
	return d, nil
}

// DigestFileParallel is like [DigestFile] but hashes the file with up to
// workers goroutines (runtime.NumCPU() if workers <= 0), as
// [DigestReaderAt] does. It digests the file's size at the time it is
// opened: if the file shrinks meanwhile, the error wraps
// io.ErrUnexpectedEOF. Errors name the path.
func DigestFileParallel(ctx context.Context, path string, alg Algorithm, workers int) ([]byte, error) {
	if err := alg.check(); err != nil {
		return nil, err
	}
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := digestReaderAt(ctx, f, size, alg, workers)
	if err != nil {
		return nil, newFileError("read", path, nil, err)
	}
	return d, nil
}

func digestReaderAt(ctx context.Context, r io.ReaderAt, size int64, alg Algorithm, workers int) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	h := New(alg)
	add := func(res chunkResult) {
		if res.full {
			h.addDigest(1, res.top[:])
			return
		}
		for p := res.partial; len(p) > 0; p = p[h.ds:] {
			h.addDigest(0, p)
		}
	}
	finish := func() []byte {
		h.n = uint64(size)
		return h.Sum(make([]byte, 0, h.ds))
	}

	chunkSize := int64(BlockSize/h.ds) * BlockSize
	nchunks := (size + chunkSize - 1) / chunkSize
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if int64(workers) > nchunks {
		workers = int(nchunks)
	}
	if workers <= 1 {
		c := newChunker(r, size, alg)
		for k := range nchunks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			res := c.hash(k)
			if res.err != nil {
				return nil, res.err
			}
			add(res)
		}
		return finish(), nil
	}

	// Worker w hashes chunks w, w+workers, w+2*workers, ... and sends the
	// results, in order, on its own channel; the loop below takes them
	// round-robin, so chunks are combined in order and at most a few per
	// worker are pending.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	chans := make([]chan chunkResult, workers)
	for w := range workers {
		ch := make(chan chunkResult, 2)
		chans[w] = ch
		wg.Go(func() {
			c := newChunker(r, size, alg)
			for k := int64(w); k < nchunks; k += int64(workers) {
				if ctx.Err() != nil {
					return
				}
				res := c.hash(k)
				select {
				case ch <- res:
				case <-ctx.Done():
					return
				}
				if res.err != nil {
					return
				}
			}
		})
	}
	for k := range nchunks {
		var res chunkResult
		select {
		case res = <-chans[k%int64(workers)]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if res.err != nil {
			return nil, res.err
		}
		add(res)
	}
	return finish(), nil
}
