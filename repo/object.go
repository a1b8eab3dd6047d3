package repo

import (
	"github.com/gocfs/gocfs/store"
)

// maxPending bounds the objects written but not yet named, each holding a
// file descriptor until the batch is made durable and linked; 0 is the
// store's default. (A variable for the tests.)
var maxPending = 0

// NewObjectWriter returns a writer of objects into the repository's
// object store (see store.Writer): content written to unnamed files,
// hashed as written and named by that digest, made durable in batches
// before it is named, with fs-verity enabled as the repository says
// (required in a secure repository). Call Sync when done, or Abort to drop
// what is not published.
//
// The caller holds the repository lock (Repo.Lock, shared) from before
// the first object until what refers to them is linked, so that garbage
// collection does not remove objects found present or just linked.
func (r *Repo) NewObjectWriter() *store.Writer { return r.st.NewWriter(nil) }

// newObjWriter is NewObjectWriter reporting to a progress phase.
func (r *Repo) newObjWriter(p *progressor) *store.Writer { return r.st.NewWriter(p.add) }
