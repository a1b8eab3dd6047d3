package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/tree"
)

// Source is a file to store: its path, and what a scan found of it.
type Source struct {
	// Path is the file's path.
	Path string
	// Digest, when not zero, is the digest the content must have (the
	// object's name).
	Digest digest.Digest
	// Size, when >= 0, is the size the file must have.
	Size int64
}

// ImportFile stores the content of the regular file at src.Path (opened
// without following a symbolic link) and returns its digest. When the
// file changed since the scan that gave src.Digest and src.Size, it is
// read once more (a file being rewritten may be whole again); if it still
// differs, the error wraps ErrChanged and names the file. Nothing is
// ever stored under a digest its content does not have.
func (w *Writer) ImportFile(src Source) (d digest.Digest, isNew bool, err error) {
	for attempt := 0; ; attempt++ {
		d, isNew, err = w.importOnce(src)
		if err == nil || !errors.Is(err, ErrChanged) || attempt > 0 {
			return d, isNew, err
		}
		w.s.notice("%s changed while being stored; reading it again", src.Path)
	}
}

func (w *Writer) importOnce(src Source) (digest.Digest, bool, error) {
	if !src.Digest.IsZero() {
		if ok, err := w.has(src.Digest); ok || err != nil {
			w.add(max(src.Size, 0))
			return src.Digest, false, err
		}
	}
	f, err := os.OpenFile(src.Path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return digest.Digest{}, false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return digest.Digest{}, false, &os.PathError{Op: "stat", Path: src.Path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return digest.Digest{}, false, fmt.Errorf("%w: %s is not a regular file", ErrChanged, src.Path)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, 0); err != nil {
		return digest.Digest{}, false, &os.PathError{Op: "fcntl", Path: src.Path, Err: err}
	}
	return w.PutFile(f, src.Digest, src.Size)
}

// Import copies files into the store, threads at a time (<= 0:
// Options.Threads), each as ImportFile does. Files with the same digest
// are read once. New content is made durable before any new name
// appears, and every new name is durable when Import returns; after an
// error nothing new is named.
func (s *Store) Import(ctx context.Context, srcs []Source, threads int) error {
	if threads <= 0 {
		threads = s.opts.Threads
	}
	w := s.NewWriter(nil)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(threads)
	seen := make(map[digest.Digest]bool)
	for _, src := range srcs {
		if !src.Digest.IsZero() {
			if seen[src.Digest] {
				continue
			}
			seen[src.Digest] = true
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			_, _, err := w.ImportFile(src)
			return err
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		w.Abort()
		return err
	}
	return w.Sync()
}

// ImportTree copies into the store every regular file of root that lives
// in the object store (content not inline, payload set), reading it from
// srcDir plus the file's path in the tree. A payload that is not an
// object path of the store's algorithm ("XX/REST", as
// digest.ParseObjectPath takes it) is refused, as is a file whose digest
// is not the one its payload names.
func (s *Store) ImportTree(ctx context.Context, root *tree.Node, srcDir string, threads int) error {
	srcs, err := s.treeSources(root, srcDir)
	if err != nil {
		return err
	}
	return s.Import(ctx, srcs, threads)
}

// treeSources lists the files of root that live in the object store.
func (s *Store) treeSources(root *tree.Node, srcDir string) ([]Source, error) {
	var srcs []Source
	err := root.Walk(func(p string, n *tree.Node) error {
		if n.LinkTo != nil || !n.IsRegular() || n.Content != nil || n.Payload == "" {
			return nil
		}
		d, err := digest.ParseObjectPath(n.Payload)
		if err == nil {
			err = s.checkAlg(d)
		}
		if err != nil {
			return fmt.Errorf("store: %s: %w", p, err)
		}
		if n.Digest != nil && !d.Equal(d.Algorithm(), n.Digest) {
			return fmt.Errorf("store: %s: %w: its digest %x is not the one its payload %s names", p, ErrCorrupt, n.Digest, n.Payload)
		}
		path := filepath.Join(srcDir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		srcs = append(srcs, Source{Path: path, Digest: d, Size: int64(n.Size)})
		return nil
	})
	return srcs, err
}
