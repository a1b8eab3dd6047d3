package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// PullOptions control Pull.
type PullOptions struct {
	// Name is the name the image gets: its composefs image is tagged
	// NAME (images/refs/NAME) and its record is streams/refs/oci/NAME.
	// Empty means the source's: a registry reference in full
	// ("registry.example/repo:tag"), a layout's TAG, an archive's single
	// repository tag.
	Name string
	// Platform picks an image from an index ("linux/arm64/v8"); empty
	// means linux and this machine's architecture.
	Platform string
	// Keychain gives registry credentials; nil means authn.DefaultKeychain
	// (the docker configuration and its credential helpers).
	Keychain authn.Keychain
	// Transport, when not nil, carries registry requests (under the idle
	// timeout and the authentication Pull adds).
	Transport http.RoundTripper
	// Insecure allows plain HTTP to any registry (it is always allowed
	// to localhost and loopback addresses).
	Insecure bool
	// IdleTimeout is how long a registry may send nothing (no connection,
	// no response, no next bytes of a body) before the request is given
	// up; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Retries is how many times a registry request that failed in a way
	// that may pass (network errors, stalls, 408, 429 and 5xx answers) is
	// tried again, after 0.25 s, then twice as long each time; 0 means
	// DefaultRetries, a negative number none. A blob is fetched on from
	// where it stopped when the registry takes range requests.
	Retries int
	// MaxBytes bounds what the pull may write: the uncompressed size of
	// the layers it reads, all together, and the size of each blob it
	// downloads (checked before the download). 0 means the space free on
	// the repository's file system when the pull starts, so that a
	// decompression bomb is refused before the disk is full; a negative
	// number means no limit.
	MaxBytes int64
	// Progress, when not nil, is told how each layer advances.
	Progress func(Progress)
	// Check, when not nil, is called under the repository lock with the
	// image about to be stored, once every blob has been checked and
	// before anything is named; an error refuses the image (nothing is
	// named) and is returned as it is.
	Check func(*Candidate) error
}

// Progress is one report on a layer being pulled. Layers are downloaded
// one after the other, in order, and imported as they download, several
// at once, so that the reports of layers interleave. The reports of one
// layer's download, and those of its import, are in order; Progress is
// never called concurrently.
type Progress struct {
	// Layer is the layer's index (0 for the bottom one), Layers their
	// number.
	Layer, Layers int
	// Digest is the layer blob's digest.
	Digest string
	// Fetching marks the reports of a layer being downloaded from a
	// registry (into a file of the repository's tmp/, without the
	// repository lock), which come before those of its import.
	Fetching bool
	// Done is how many bytes of the blob have been read (or downloaded),
	// Total its size.
	Done, Total int64
	// Stored says that the repository has the layer already: nothing is
	// read.
	Stored bool
	// Finished marks the last report of the download, and of the layer.
	Finished bool
}

// PullResult says what Pull did.
type PullResult struct {
	// Name is the name the image got.
	Name string `json:"name"`
	// Image is the composefs image's fs-verity digest (hex).
	Image string `json:"image"`
	// ManifestDigest is the manifest's digest ("sha256:…").
	ManifestDigest string `json:"manifest_digest"`
	// Layers says what happened to each layer, bottom first.
	Layers []LayerResult `json:"layers"`
}

// LayerResult says what Pull did with one layer.
type LayerResult struct {
	DiffID string `json:"diff_id"`
	// Stored says the repository had the layer already.
	Stored bool `json:"stored"`
	// Read counts the bytes of the layer blob read, Files the regular
	// files in the layer, NewObjects the objects added for them.
	Read       int64 `json:"bytes_read"`
	Files      int   `json:"files"`
	NewObjects int   `json:"new_objects"`
	// Partial says the layer is zstd:chunked and was fetched in part:
	// its TOC, tar headers and the files the repository lacked (Read
	// counts the bytes received).
	Partial bool `json:"partial,omitempty"`
}

// maxCommitAttempts bounds how often a pull fetches layers again that
// garbage collection removed before the pull could name them.
const maxCommitAttempts = 3

// Pull stores the OCI image src in the repository: each layer's files as
// objects and the layer itself as a split stream (nothing is unpacked to
// disk), then the composefs image of the merged layers, tagged with the
// image's name, and the image's record (manifest, configuration, layers).
// Layers the repository has already (by diff ID) are not read again.
//
// src is a registry reference ("registry.example/repo:tag", "docker://"
// optional), "oci:DIR[:TAG]" (an OCI image layout) or
// "docker-archive:FILE[:REF]" (a docker save archive).
//
// Every manifest, index, configuration and layer blob is checked against
// the digest and size of the descriptor that names it, and every layer
// against its diff ID; a blob that fails (ErrDigestMismatch) leaves
// nothing named. A layer from a registry is downloaded into an unnamed
// file (checked as it comes) and imported from it as it comes, under the
// shared lock, which is given up when the import waits for the network
// more than a second (the import starts again when the download is
// complete); the image is named under the lock. A zstd:chunked layer is
// fetched in part (the files the repository lacks) and rebuilt.
// What an interrupted pull leaves is complete objects and layers that
// nothing refers to until a later pull, which uses them.
func Pull(ctx context.Context, r *repo.Repo, src string, opts PullOptions) (*PullResult, error) {
	opts.setDefaults(r)
	s, err := openSource(ctx, src, &opts)
	if err != nil {
		return nil, err
	}
	defer s.close()
	nm := opts.Name
	if nm == "" {
		nm = s.name
	}
	if nm == "" {
		return nil, fmt.Errorf("oci: %s names no image: give the image a name", src)
	}
	if err := repo.CheckRefName(nm); err != nil {
		return nil, err
	}
	p := &puller{r: r, s: s, opts: &opts, name: nm, budget: &budget{limit: opts.MaxBytes}}
	return p.run(ctx)
}

// setDefaults turns the zero values of the options into the defaults.
func (o *PullOptions) setDefaults(r *repo.Repo) {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = -1
		var st unix.Statfs_t
		if err := unix.Statfs(r.Dir(), &st); err == nil {
			o.MaxBytes = int64(st.Bavail) * st.Bsize
		}
	}
}

// puller pulls one image.
type puller struct {
	r      *repo.Repo
	s      *source
	opts   *PullOptions
	name   string
	budget *budget
	// local indexes the files of the stored layers, for zstd:chunked
	// pulls (built once, under localMu).
	local   *localFiles
	localMu sync.Mutex
	order   *layerOrder // the layers being imported, named in order

	progressMu sync.Mutex // Progress is never called concurrently
}

// pulledLayer is a layer in the repository: its entries, and the split
// stream that holds it.
type pulledLayer struct {
	entries []entry
	stream  []byte
	result  LayerResult
}

// run gets every layer into the repository, then names the image. If
// garbage collection removed a layer before the image could be named (no
// lock is held between the layers' imports), it is fetched again.
func (p *puller) run(ctx context.Context) (*PullResult, error) {
	layers := make([]*pulledLayer, len(p.s.layers))
	for attempt := 1; ; attempt++ {
		if err := p.getLayers(ctx, layers); err != nil {
			return nil, err
		}
		res, gone, err := p.commit(ctx, layers)
		if err != nil || len(gone) == 0 {
			return res, err
		}
		if attempt == maxCommitAttempts {
			return nil, fmt.Errorf("oci: garbage collection removed layers of the image %d times while it was pulled; try again", attempt)
		}
		for _, i := range gone {
			layers[i] = nil
		}
	}
}

// report sends a progress report about layer i.
func (p *puller) report(i int, pr Progress) {
	if p.opts.Progress != nil {
		pr.Layer, pr.Layers, pr.Digest = i, len(p.s.layers), p.s.layers[i].Digest.String()
		p.progressMu.Lock()
		defer p.progressMu.Unlock()
		p.opts.Progress(pr)
	}
}

// layerErr says which layer an error is about.
func (p *puller) layerErr(i int, err error) error {
	return fmt.Errorf("oci: layer %d (%s): %w", i, p.s.layers[i].Digest, err)
}

// storedLayer returns layer i from its split stream, or nil if the
// repository does not have it. (Read without the lock: a stream removed
// meanwhile is found missing when the image is named.)
func (p *puller) storedLayer(i int) (*pulledLayer, error) {
	diffID := p.s.diffIDs[i]
	d, err := resolveLayer(p.r.ResolveStream, diffID.String())
	if err != nil {
		return nil, nil
	}
	want, _ := hex.DecodeString(diffID.Hex) // checked by setImage
	entries, err := storedLayer(p.r, d, want)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l := &pulledLayer{entries: entries, stream: d, result: LayerResult{DiffID: diffID.String(), Stored: true}}
	for _, e := range entries {
		if e.kind == entryAdd && e.mode&tree.ModeType == tree.ModeRegular {
			l.result.Files++
		}
	}
	return l, nil
}

// commit names the image: under the lock, it checks that every layer's
// split stream is still there (it returns the layers that are not, for
// them to be fetched again), then stores the composefs image of the merged
// layers, the manifest, the configuration and the record.
func (p *puller) commit(ctx context.Context, layers []*pulledLayer) (*PullResult, []int, error) {
	fs := newRootfs(Rules{})
	for i, l := range layers {
		if err := fs.apply(l.entries); err != nil {
			return nil, nil, fmt.Errorf("oci: layer %d (%s): %w", i, p.s.layers[i].Digest, err)
		}
	}
	root, err := fs.finish(p.r.Algorithm())
	if err != nil {
		return nil, nil, err
	}
	var res *PullResult
	var gone []int
	err = p.r.Update(ctx, func(tx *repo.Tx) error {
		for i, l := range layers {
			if d, err := resolveLayer(tx.ResolveStream, p.s.diffIDs[i].String()); err != nil || !bytes.Equal(d, l.stream) {
				gone = append(gone, i)
			}
		}
		if len(gone) > 0 {
			return nil // nothing named
		}
		var err error
		res, err = p.nameImage(tx, root, layers)
		return err
	})
	if err != nil || len(gone) > 0 {
		return nil, gone, err
	}
	return res, nil, nil
}

// nameImage stores the image, its manifest, configuration and record in
// the transaction, and names them.
func (p *puller) nameImage(tx *repo.Tx, root *tree.Node, layers []*pulledLayer) (*PullResult, error) {
	s := p.s
	var copts repo.CreateOptions
	if p.opts.Check != nil {
		c := &Candidate{Manifest: s.manifest, Config: s.config, ManifestDigest: s.manifestDigest.String(), Root: root, r: p.r}
		for _, l := range layers {
			c.layers = append(c.layers, l.entries)
		}
		if err := p.opts.Check(c); err != nil {
			return nil, err
		}
		copts.Signatures = c.sigs
		for d, sig := range c.sigs { // the manifest's and config's objects
			tx.Objects().SetSignature(d, sig)
		}
	}
	img, err := tx.CommitTree(root, copts)
	if err != nil {
		return nil, err
	}
	if p.name != "" {
		if err := tx.SetImageRef(p.name, img.Digest); err != nil {
			return nil, err
		}
	}
	streams := make([][]byte, len(layers))
	res := &PullResult{Name: p.name, ManifestDigest: s.manifestDigest.String(), Image: img.Image}
	for i, l := range layers {
		res.Layers = append(res.Layers, l.result)
		streams[i] = l.stream
	}
	if _, _, err := writeImageStreams(tx, s, streams, img.Digest, p.name); err != nil {
		return nil, err
	}
	return res, nil
}

// budget counts what a pull writes against its limit (negative: none).
type budget struct {
	limit int64
	used  atomic.Int64
}

// left returns what may still be written (negative: no limit).
func (b *budget) left() int64 {
	if b.limit < 0 {
		return -1
	}
	return max(b.limit-b.used.Load(), 0)
}

// take counts n bytes more, unless that would pass the limit.
func (b *budget) take(n int64) bool {
	if b.limit >= 0 && b.used.Load()+n > b.limit {
		return false
	}
	b.used.Add(n)
	return true
}
