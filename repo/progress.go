package repo

import (
	"sync"
	"sync/atomic"
	"time"
)

// Progress is one report on a long operation, for Options.Progress. A phase
// starts with Done 0 and ends with a report that has Finished set.
type Progress struct {
	// Phase says what is being done ("importing objects", "checking
	// objects", ...).
	Phase string
	// Done is how much of the phase is done, Total how much there is in
	// all (-1 when not known beforehand).
	Done, Total int64
	// Bytes says that Done and Total count bytes rather than items.
	Bytes bool
	// Finished marks the last report of the phase.
	Finished bool
}

// progressInterval is the least time between two reports of a phase.
const progressInterval = 100 * time.Millisecond

// progressor reports one phase. A nil progressor does nothing.
type progressor struct {
	fn    func(Progress)
	mu    sync.Mutex // serializes calls to fn
	p     Progress
	done  atomic.Int64
	total atomic.Int64
	last  atomic.Int64 // time of the last report, in ns since start
	start time.Time
	ended bool
}

func (r *Repo) startProgress(phase string, total int64, bytes bool) *progressor {
	if r.opts.Progress == nil {
		return nil
	}
	p := &progressor{fn: r.opts.Progress, p: Progress{Phase: phase, Total: total, Bytes: bytes}, start: time.Now()}
	p.total.Store(total)
	p.fn(p.p)
	return p
}

// add counts n more units done.
func (p *progressor) add(n int64) {
	if p == nil {
		return
	}
	p.done.Add(n)
	now := int64(time.Since(p.start))
	last := p.last.Load()
	if now-last < int64(progressInterval) || !p.last.CompareAndSwap(last, now) {
		return
	}
	p.report(false)
}

func (p *progressor) report(finished bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = finished
	p.p.Done = p.done.Load()
	p.p.Total = p.total.Load()
	p.p.Finished = finished
	p.fn(p.p)
}

// finish ends the phase.
func (p *progressor) finish() {
	if p != nil {
		p.report(true)
	}
}
