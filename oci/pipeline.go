package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// tailWait is how long the import of a layer being downloaded waits for
// the next bytes, holding the repository lock (shared), before it gives
// the lock up: it starts again once the download is complete, so that a
// stalled or slow registry does not hold garbage collection up.
const tailWait = time.Second

// errTailGaveUp: an import reading a download as it comes gave up (the
// download stalled, or started over).
var errTailGaveUp = errors.New("oci: the download is slower than the import")

// parallelLayers bounds the layers fetched and imported at once: each
// import keeps a core busy decompressing, and its workers another.
func parallelLayers() int { return min(max(runtime.NumCPU(), 2), 4) }

// getLayers fills in the layers that are nil: from their stored split
// streams, or else from the source, several layers at once, each
// imported as it is fetched in a transaction of its own. Downloads take
// turns, in order: a layer's starts when the one before's ends, or when
// that one's import is slower than its download (so that the network
// and the cores are both kept busy). When a layer fails, the layers after
// it are given up, those before it go on (a pull started again finds them
// stored), as if they had been imported one after the other. It returns
// the error of the first layer that failed.
func (p *puller) getLayers(ctx context.Context, layers []*pulledLayer) error {
	var todo []int
	for i := range layers {
		if layers[i] != nil {
			continue
		}
		l, err := p.storedLayer(i)
		if err != nil {
			return p.layerErr(i, err)
		}
		if l == nil {
			todo = append(todo, i)
			continue
		}
		layers[i] = l
		p.report(i, Progress{Stored: true, Done: p.s.layers[i].Size, Total: p.s.layers[i].Size, Finished: true})
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed atomic.Bool
	)
	errs := make([]error, len(todo))
	dropped := make([]bool, len(todo)) // canceled because an earlier layer failed
	// Every layer's context exists before any import starts: a failing
	// layer cancels those after it, which may not have started yet.
	lctxs := make([]context.Context, len(todo))
	cancels := make([]context.CancelFunc, len(todo))
	for k := range todo {
		lctxs[k], cancels[k] = context.WithCancel(ctx)
		defer cancels[k]()
	}
	p.order = newLayerOrder(len(layers), todo)
	slots := make(chan struct{}, parallelLayers())
	turn := make(chan struct{})
	close(turn)
	for k, i := range todo {
		t := &fetchTurn{mine: turn, next: make(chan struct{}), failed: &failed}
		turn = t.next
		lctx := lctxs[k]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			defer t.done()
			l, err := p.getLayer(lctx, i, t)
			p.order.finished(i, err == nil)
			mu.Lock()
			defer mu.Unlock()
			layers[i] = l
			if err == nil || dropped[k] {
				return
			}
			errs[k] = p.layerErr(i, err)
			failed.Store(true)
			for j := k + 1; j < len(todo); j++ {
				dropped[j] = true
				cancels[j]()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// layerOrder makes the layers of a pull named in order: a layer's split
// stream is named only once the layers before it are, so that a layer
// that fails leaves none above it named, as when layers were imported one
// after the other. (The layers before one being imported are downloaded
// already: waiting for them never waits for the network.)
type layerOrder struct {
	done []chan struct{} // closed when the layer's import ends; nil if stored
	ok   []atomic.Bool
}

func newLayerOrder(n int, todo []int) *layerOrder {
	o := &layerOrder{done: make([]chan struct{}, n), ok: make([]atomic.Bool, n)}
	for _, i := range todo {
		o.done[i] = make(chan struct{})
	}
	return o
}

// finished records the end of layer i's import.
func (o *layerOrder) finished(i int, ok bool) {
	o.ok[i].Store(ok)
	close(o.done[i])
}

// wait waits for the layers before i, and fails if one failed.
func (o *layerOrder) wait(ctx context.Context, i int) error {
	if o == nil {
		return nil
	}
	for j := range i {
		if o.done[j] == nil {
			continue
		}
		select {
		case <-o.done[j]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !o.ok[j].Load() {
			return errAbandoned
		}
	}
	return nil
}

// fetchTurn orders the downloads of a pull's layers.
type fetchTurn struct {
	mine   <-chan struct{} // closed when this layer may download
	next   chan struct{}   // closed when the next may
	once   sync.Once
	failed *atomic.Bool // a layer failed: downloads not started are not
}

// wait waits for the layer's turn to download; it fails if a layer
// failed meanwhile.
func (t *fetchTurn) wait(ctx context.Context) error {
	select {
	case <-t.mine:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.failed.Load() {
		return errAbandoned
	}
	return nil
}

// done gives the turn to the next layer.
func (t *fetchTurn) done() { t.once.Do(func() { close(t.next) }) }

// getLayer fetches and imports layer i: a local source's read as it is,
// a registry's zstd:chunked layer in part (when the registry serves byte
// ranges), any other as it downloads: through memory at first, and if
// that gives up (the download is slower than the import), through a file
// of the repository.
func (p *puller) getLayer(ctx context.Context, i int, turn *fetchTurn) (*pulledLayer, error) {
	if p.s.fetchLayer == nil {
		turn.done()
		rc, err := p.s.openLayer(i)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return p.importLayer(ctx, i, rc, false)
	}
	ref, ok, err := chunkedRef(p.s.layers[i])
	if err != nil {
		return nil, err
	}
	if err := turn.wait(ctx); err != nil {
		return nil, err
	}
	if ok {
		cl, err := p.fetchChunked(ctx, i, ref)
		if err == nil {
			turn.done()
			defer cl.Close()
			return p.importChunked(ctx, i, cl)
		}
		if !errors.Is(err, errNoRanges) {
			return nil, err
		}
	}
	l, err := p.memLayer(ctx, i, turn)
	if !errors.Is(err, errTailGaveUp) {
		return l, err
	}
	return p.streamLayer(ctx, i, turn)
}

// memLayer downloads layer i and imports it as it comes, through memory
// (a memTail): the blob is not written to disk. When the download is
// slower than the import (nothing comes for tailWait) or starts over, it
// gives up with an error wrapping errTailGaveUp, having named nothing:
// the caller fetches the layer again through a file. The download gives
// the turn to the next layer's when it completes, or as soon as it has
// to wait for the import.
func (p *puller) memLayer(ctx context.Context, i int, turn *fetchTurn) (*pulledLayer, error) {
	desc := p.s.layers[i]
	if left := p.budget.left(); left >= 0 && desc.Size > left {
		return nil, fmt.Errorf("%w: the blob is %d bytes, more than the %d left of what this pull may write (PullOptions.MaxBytes, oci pull --max-size)", ErrTooLarge, desc.Size, left)
	}
	dctx, cancel := context.WithCancel(ctx)
	mt := newMemTail(dctx, turn.done)
	downloaded := make(chan struct{})
	go func() {
		defer close(downloaded)
		err := p.download(dctx, i, mt)
		mt.finish(err)
		if err == nil {
			turn.done()
		}
	}()
	// The import checks the blob's digest (mt is a checkedSink), hashing
	// it together with the archive it unpacks to.
	l, err := p.importLayer(ctx, i, mt.reader(tailWait), false)
	cancel()
	<-downloaded
	if err != nil {
		if mt.abandoned() && !errors.Is(err, errTailGaveUp) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", errTailGaveUp, err)
		}
		return nil, err
	}
	l.result.Read = desc.Size
	return l, nil
}

// streamLayer downloads layer i into an unnamed file of the repository
// and imports it as it comes. The import holds the repository lock, so
// when it waits for the network longer than tailWait it gives up, and
// starts again once the download is complete (without the lock in
// between). Nothing is named before the download is checked.
func (p *puller) streamLayer(ctx context.Context, i int, turn *fetchTurn) (*pulledLayer, error) {
	desc := p.s.layers[i]
	if left := p.budget.left(); left >= 0 && desc.Size > left {
		return nil, fmt.Errorf("%w: the blob is %d bytes, more than the %d left of what this pull may write (PullOptions.MaxBytes, oci pull --max-size)", ErrTooLarge, desc.Size, left)
	}
	f, err := p.r.StagingFile()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tf := newTailFile(f)
	dctx, cancel := context.WithCancel(ctx)
	go func() {
		tf.finish(p.download(dctx, i, tf))
		turn.done()
	}()
	defer func() {
		cancel()
		tf.wait(context.Background()) // f is closed after the download ends
	}()
	l, err := p.importLayer(ctx, i, tf.reader(tailWait), true)
	if errors.Is(err, errTailGaveUp) {
		if err := tf.wait(ctx); err != nil {
			return nil, err
		}
		l, err = p.importLayer(ctx, i, tf.reader(0), true)
	}
	if err != nil {
		return nil, err
	}
	l.result.Read = desc.Size
	return l, nil
}

// download fetches the blob of layer i into w, reporting its progress.
func (p *puller) download(ctx context.Context, i int, w blobSink) error {
	desc := p.s.layers[i]
	var last time.Time
	progress := func(n int64) {
		if now := time.Now(); now.Sub(last) >= 50*time.Millisecond {
			last = now
			p.report(i, Progress{Fetching: true, Done: n, Total: desc.Size})
		}
	}
	p.report(i, Progress{Fetching: true, Total: desc.Size})
	if err := p.s.fetchLayer(ctx, i, w, progress); err != nil {
		return err
	}
	p.report(i, Progress{Fetching: true, Done: desc.Size, Total: desc.Size, Finished: true})
	return nil
}

// tailFile is a blob being downloaded into a file, read as it grows.
type tailFile struct {
	f *os.File

	mu      sync.Mutex
	size    int64         // bytes written
	changed chan struct{} // closed when size, done or restarted change
	done    bool
	err     error // the download's, once done
	// gen counts the times the download started over (the file
	// truncated): readers that began before give up.
	gen int
}

func newTailFile(f *os.File) *tailFile {
	return &tailFile{f: f, changed: make(chan struct{})}
}

// notify wakes the readers; under mu.
func (t *tailFile) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *tailFile) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.mu.Lock()
	t.size += int64(n)
	t.notify()
	t.mu.Unlock()
	return n, err
}

// reset starts the download over.
func (t *tailFile) reset() error {
	t.mu.Lock()
	t.gen++
	t.size = 0
	t.notify()
	t.mu.Unlock()
	return fileSink{t.f}.reset()
}

// finish records the end of the download: err nil means the blob is
// complete and checked.
func (t *tailFile) finish(err error) {
	t.mu.Lock()
	t.done, t.err = true, err
	t.notify()
	t.mu.Unlock()
}

// wait waits for the end of the download and returns its error.
func (t *tailFile) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		done, err, ch := t.done, t.err, t.changed
		t.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reader returns a reader of the blob from its start: it waits for bytes
// still to come (giving up with errTailGaveUp after maxWait, unless
// maxWait is 0), and ends when the download does: io.EOF once the blob
// is checked, else the download's error.
func (t *tailFile) reader(maxWait time.Duration) io.Reader {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &tailReader{t: t, maxWait: maxWait, gen: t.gen}
}

type tailReader struct {
	t       *tailFile
	off     int64
	maxWait time.Duration
	gen     int // the file's gen when the reader began
}

func (r *tailReader) Read(p []byte) (int, error) {
	t := r.t
	var timer <-chan time.Time
	for {
		t.mu.Lock()
		size, done, err, ch, broken := t.size, t.done, t.err, t.changed, t.gen != r.gen
		t.mu.Unlock()
		switch {
		case broken:
			return 0, errTailGaveUp
		case r.off < size:
			n, rerr := t.f.ReadAt(p[:min(int64(len(p)), size-r.off)], r.off)
			t.mu.Lock()
			broken = t.gen != r.gen
			t.mu.Unlock()
			if broken {
				return 0, errTailGaveUp
			}
			r.off += int64(n)
			if rerr == io.EOF {
				rerr = nil
			}
			return n, rerr
		case done && err != nil:
			return 0, err
		case done:
			return 0, io.EOF
		}
		if r.maxWait > 0 && timer == nil {
			timer = time.After(r.maxWait)
		}
		select {
		case <-ch:
		case <-timer:
			return 0, errTailGaveUp
		}
	}
}
