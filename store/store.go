// Package store is a composefs object store: regular files named by their
// fs-verity digest, as objects/XX/<rest of the hex digest>, each stored once.
//
// Objects are only ever visible complete under their final name: content is
// written to a temporary file in the object's directory, made durable, and
// then renamed into place. Several processes may import into one store at
// once; a name that already exists is kept (its content is the same by
// construction). fs-verity is enabled on new objects where the filesystem
// supports it.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/tree"
)

// Options control opening a store.
type Options struct {
	// Create makes the store directory if it does not exist.
	Create bool
	// NoVerity skips enabling fs-verity on new objects.
	NoVerity bool
}

// Store is an object store rooted at a directory.
type Store struct {
	dir  string
	opts Options
}

// ErrInvalidPath is returned for an object path that is not XX/rest of a
// hex digest.
var ErrInvalidPath = errors.New("store: invalid object path")

// Open opens the store at dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", dir, err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: %s is not a directory", dir)
	}
	return &Store{dir: dir, opts: opts}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// ObjectPath returns the relative path ("XX/rest") of a digest's object.
func ObjectPath(digest []byte) string {
	h := hex.EncodeToString(digest)
	return h[:2] + "/" + h[2:]
}

// CheckObjectPath reports whether rel looks like an object path: two hex
// digits, a slash, and the rest of a digest of hexLen digits in all.
func CheckObjectPath(rel string, hexLen int) error {
	if len(rel) != hexLen+1 || rel[2] != '/' {
		return fmt.Errorf("%w: %q", ErrInvalidPath, rel)
	}
	for i := 0; i < len(rel); i++ {
		c := rel[i]
		if i == 2 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: %q", ErrInvalidPath, rel)
		}
	}
	return nil
}

// Path returns the absolute path of the object at rel (e.g. a payload).
func (s *Store) Path(rel string) string {
	return filepath.Join(s.dir, strings.TrimLeft(rel, "/"))
}

// Has reports whether the object at rel exists.
func (s *Store) Has(rel string) bool {
	_, err := os.Lstat(s.Path(rel))
	return err == nil
}

// pending is an object written to a temporary name, not yet published.
type pending struct {
	tmp, final string
}

// Import copies files into the store: srcs[i] becomes the object at
// rels[i] ("XX/rest"). Objects already present are skipped. New content is
// made durable before any new name appears, and every new name is durable
// when Import returns. threads <= 0 means the number of CPUs.
func (s *Store) Import(ctx context.Context, srcs, rels []string, threads int) error {
	if len(srcs) != len(rels) {
		return errors.New("store: Import needs as many sources as object paths")
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		done     []pending
		seen     = make(map[string]bool)
		wg       sync.WaitGroup
	)
	cleanup := func() {
		for _, p := range done {
			os.Remove(p.tmp)
		}
	}
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for next < len(srcs) && seen[rels[next]] {
					next++
				}
				if firstErr != nil || next >= len(srcs) {
					mu.Unlock()
					return
				}
				i := next
				seen[rels[i]] = true
				next++
				mu.Unlock()
				if err := ctx.Err(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				p, err := s.stage(srcs[i], rels[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if p != nil {
					done = append(done, *p)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		cleanup()
		return firstErr
	}
	if len(done) == 0 {
		return nil
	}
	// Content first, then names: a crash never leaves a name pointing at
	// incomplete content.
	if err := s.Sync(); err != nil {
		cleanup()
		return err
	}
	for i, p := range done {
		if err := os.Rename(p.tmp, p.final); err != nil {
			for _, q := range done[i:] {
				os.Remove(q.tmp)
			}
			return fmt.Errorf("store: publishing %s: %w", p.final, err)
		}
	}
	return s.Sync()
}

// ImportTree copies into the store every regular file of root that lives in
// the object store (content not inline, payload set), reading it from
// srcDir plus the file's path in the tree.
func (s *Store) ImportTree(ctx context.Context, root *tree.Node, srcDir string, threads int) error {
	var srcs, rels []string
	err := root.Walk(func(p string, n *tree.Node) error {
		if n.LinkTo == nil && n.IsRegular() && n.Content == nil && n.Payload != "" {
			srcs = append(srcs, filepath.Join(srcDir, p))
			rels = append(rels, strings.TrimLeft(n.Payload, "/"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.Import(ctx, srcs, rels, threads)
}

// Sync makes everything written to the store's filesystem durable.
func (s *Store) Sync() error {
	fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("store: syncing %s: %w", s.dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("store: syncing %s: %w", s.dir, err)
	}
	return nil
}

// stage writes src's content to a temporary file beside the object's final
// name. It returns nil when the object already exists.
func (s *Store) stage(src, rel string) (p *pending, retErr error) {
	rel = strings.TrimLeft(rel, "/")
	final := s.Path(rel)
	if _, err := os.Lstat(final); err == nil {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(final), ".tmp-"+randomName())
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer func() {
		if retErr != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if err := copyContent(out, in); err != nil {
		return nil, fmt.Errorf("store: copying %s to %s: %w", src, tmp, err)
	}
	if err := out.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("store: writing %s: %w", tmp, err)
	}
	if !s.opts.NoVerity {
		enableVerity(tmp)
	}
	return &pending{tmp: tmp, final: final}, nil
}

// enableVerity tries to enable fs-verity; filesystems without it are fine.
func enableVerity(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = fsverity.Enable(f, fsverity.SHA256) // best effort, as upstream
}

// copyContent copies by reflink where the filesystem shares extents, else
// with copy_file_range, else by reading and writing.
func copyContent(out, in *os.File) error {
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return nil
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	remain := fi.Size()
	for remain > 0 {
		n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, int(min(remain, 1<<30)), 0)
		if err != nil || n == 0 {
			break
		}
		remain -= int64(n)
	}
	if remain == 0 {
		return nil
	}
	// Fall back for what's left (or all of it).
	if _, err := in.Seek(fi.Size()-remain, io.SeekStart); err != nil {
		return err
	}
	if _, err := out.Seek(fi.Size()-remain, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(onlyWriter{out}, in)
	if err != nil {
		return err
	}
	if n != remain {
		return fmt.Errorf("file changed size while being copied")
	}
	return nil
}

// onlyWriter hides ReadFrom so io.Copy does a plain read/write loop.
type onlyWriter struct{ io.Writer }

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
