package repo

import (
	"bytes"
	"context"
	"fmt"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/repo/splitstream"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
)

// Tx is a change to a repository made by [Repo.Update]: objects written,
// split streams stored, images built, names set and removed. Objects are
// written at once; every name (streams/NAME, streams/refs/REF,
// images/refs/NAME) is only recorded, and set when the function given to
// Update returns nil, after everything it names is durable. A Tx is used
// by one goroutine at a time, and only inside Update's function.
type Tx struct {
	r       *Repo
	ctx     context.Context
	objs    *store.Writer
	streams map[string]digest.Digest // streams/NAME to set
	order   []string                 // streams' names, in order
	refs    []txRef                  // references to set or remove, in order
}

// txRef is a reference set (or, with remove, removed) by a Tx.
type txRef struct {
	rel, top, target string
	remove           bool
}

// Update runs fn in a transaction on the repository, holding the
// repository lock shared (garbage collection can't run meanwhile): what fn
// writes through the Tx is published when fn returns nil, objects first,
// then the split streams' names, then references, each made durable
// before the next. When fn fails (or ctx ends) nothing is named: the
// objects written are left for garbage collection.
func (r *Repo) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := r.writable(); err != nil {
		return err
	}
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return err
	}
	defer unlock()
	tx := &Tx{r: r, ctx: ctx, objs: r.NewObjectWriter(), streams: make(map[string]digest.Digest)}
	defer tx.objs.Abort()
	if err := fn(tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tx.commit()
}

// commit publishes what the transaction recorded.
func (tx *Tx) commit() error {
	r := tx.r
	if err := tx.objs.Sync(); err != nil {
		return err
	}
	for _, name := range tx.order {
		if err := r.replaceSymlinkAt(streamsDir+"/"+name, streamLinkTarget(tx.streams[name])); err != nil {
			return fmt.Errorf("repo: naming stream %s: %w", name, err)
		}
	}
	if len(tx.refs) == 0 {
		return r.sync()
	}
	if err := r.sync(); err != nil {
		return err
	}
	for _, ref := range tx.refs {
		var err error
		if ref.remove {
			err = r.removeLink(ref.top, ref.rel)
		} else {
			err = r.replaceSymlinkAt(ref.rel, ref.target)
		}
		if err != nil {
			return fmt.Errorf("repo: %s: %w", ref.rel, err)
		}
	}
	return r.sync()
}

// Repo returns the repository the transaction changes.
func (tx *Tx) Repo() *Repo { return tx.r }

// Objects returns the transaction's object writer: objects put there are
// published, at the latest, before any name the transaction sets.
func (tx *Tx) Objects() *store.Writer { return tx.objs }

// PutStream finishes the split stream w, stores it as an object and
// records the name streams/NAME for it. It returns the stream's digest.
func (tx *Tx) PutStream(name string, w *splitstream.Writer) (digest.Digest, error) {
	var buf bytes.Buffer
	if _, err := w.Finish(&buf); err != nil {
		return digest.Digest{}, fmt.Errorf("repo: stream %s: %w", name, err)
	}
	return tx.PutStreamBytes(name, buf.Bytes())
}

// PutStreamBytes stores data, a finished split stream, as an object and
// records the name streams/NAME for it. It returns the stream's digest.
func (tx *Tx) PutStreamBytes(name string, data []byte) (digest.Digest, error) {
	if err := CheckStreamName(name); err != nil {
		return digest.Digest{}, err
	}
	d, err := tx.objs.Put(data)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: stream %s: %w", name, err)
	}
	if _, ok := tx.streams[name]; !ok {
		tx.order = append(tx.order, name)
	}
	tx.streams[name] = d
	return d, nil
}

// ResolveStream is Repo.ResolveStream, seeing the streams the
// transaction stored.
func (tx *Tx) ResolveStream(name string) (digest.Digest, error) {
	if d, ok := tx.streams[name]; ok {
		return d, nil
	}
	return tx.r.ResolveStream(name)
}

// SetStreamRef records streams/refs/REF, pointing at the split stream
// streams/STREAM.
func (tx *Tx) SetStreamRef(ref, stream string) error {
	if err := CheckRefName(ref); err != nil {
		return err
	}
	if err := CheckStreamName(stream); err != nil {
		return err
	}
	tx.refs = append(tx.refs, txRef{rel: streamRefsDir + "/" + ref, target: streamRefTarget(ref, stream)})
	return nil
}

// RemoveStreamRef records the removal of streams/refs/REF (and of the
// directories above it it leaves empty). A reference not there is then
// an error wrapping ErrNotFound.
func (tx *Tx) RemoveStreamRef(ref string) error {
	if err := CheckRefName(ref); err != nil {
		return err
	}
	tx.refs = append(tx.refs, txRef{rel: streamRefsDir + "/" + ref, top: streamRefsDir, remove: true})
	return nil
}

// SetImageRef records images/refs/NAME, pointing at the image d (which
// must be linked under images/ by then).
func (tx *Tx) SetImageRef(name string, d digest.Digest) error {
	if err := CheckRefName(name); err != nil {
		return err
	}
	tx.refs = append(tx.refs, txRef{rel: refsDir + "/" + name, target: refLinkTarget(name, d)})
	return nil
}

// RemoveImageRef records the removal of images/refs/NAME.
func (tx *Tx) RemoveImageRef(name string) error {
	if err := CheckRefName(name); err != nil {
		return err
	}
	tx.refs = append(tx.refs, txRef{rel: refsDir + "/" + name, top: refsDir, remove: true})
	return nil
}

// CommitTree stores the image of root (as Repo.CommitTree, with the lock
// the transaction holds) and links it under images/, unnamed: name it
// with SetImageRef.
func (tx *Tx) CommitTree(root *tree.Node, opts CreateOptions) (*ImportResult, error) {
	opts.Locked = true
	return tx.r.CommitTree(tx.ctx, root, "", "", opts)
}
