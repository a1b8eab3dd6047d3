package oci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/store"
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
	// Transport, when not nil, carries registry requests.
	Transport http.RoundTripper
	// Insecure allows plain HTTP to any registry (it is always allowed
	// to localhost and loopback addresses).
	Insecure bool
	// Progress, when not nil, is told how each layer advances.
	Progress func(Progress)
}

// Progress is one report on a layer being pulled. Reports of one layer
// come from one goroutine, layers one after the other.
type Progress struct {
	// Layer is the layer's index (0 for the bottom one), Layers their
	// number.
	Layer, Layers int
	// Digest is the layer blob's digest.
	Digest string
	// Done is how many bytes of the blob have been read, Total its size
	// (-1 when not known).
	Done, Total int64
	// Stored says that the repository has the layer already: nothing is
	// read.
	Stored bool
	// Finished marks the layer's last report.
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
}

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
// Pull holds the repository's shared lock throughout. What an interrupted
// pull leaves is complete objects and layers that nothing refers to until a
// later pull, which uses them.
func Pull(ctx context.Context, r *repo.Repo, src string, opts PullOptions) (*PullResult, error) {
	s, err := openSource(ctx, src, &opts)
	if err != nil {
		return nil, err
	}
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
	// Garbage collection stays out until the record refers to all that
	// is written.
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	objs := r.NewObjectWriter()
	defer objs.Abort()

	rawManifest, err := s.img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("oci: reading the manifest: %w", err)
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("oci: reading the manifest: %w", err)
	}
	mdigest, err := s.img.Digest()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	mtype, err := s.img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	rawConfig, err := s.img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("oci: reading the configuration: %w", err)
	}
	if got := sha256.Sum256(rawConfig); manifest.Config.Digest.Algorithm != "sha256" || hex.EncodeToString(got[:]) != manifest.Config.Digest.Hex {
		return nil, fmt.Errorf("oci: the configuration has digest sha256:%x, the manifest says %s", got, manifest.Config.Digest)
	}
	config, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("oci: reading the configuration: %w", err)
	}
	layers, err := s.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	if len(layers) != len(config.RootFS.DiffIDs) || len(layers) != len(manifest.Layers) {
		return nil, fmt.Errorf("oci: the manifest lists %d layers, the configuration %d diff IDs", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}

	rec := &ImageRecord{
		ManifestDigest: mdigest.String(), MediaType: string(mtype),
		ConfigDigest: manifest.Config.Digest.String(),
	}
	res := &PullResult{Name: nm, ManifestDigest: mdigest.String()}
	fs := newRootfs()
	var streams [][]byte
	for i, l := range layers {
		diffID := config.RootFS.DiffIDs[i]
		if diffID.Algorithm != "sha256" {
			return nil, fmt.Errorf("oci: layer %d: diff ID %s is not a sha256 digest", i, diffID)
		}
		desc := manifest.Layers[i]
		lr := LayerResult{DiffID: diffID.String()}
		entries, stream, err := pullLayer(ctx, r, objs, s, l, desc, diffID, i, len(layers), opts.Progress, &lr)
		if err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, desc.Digest, err)
		}
		if err := fs.apply(entries); err != nil {
			return nil, fmt.Errorf("oci: layer %d (%s): %w", i, desc.Digest, err)
		}
		streams = append(streams, stream)
		rec.Layers = append(rec.Layers, LayerRecord{
			Digest: desc.Digest.String(), Size: desc.Size, MediaType: string(desc.MediaType),
			DiffID: diffID.String(), Stream: fsverity.Hex(stream),
		})
		res.Layers = append(res.Layers, lr)
	}
	root, err := fs.tree(r.Algorithm())
	if err != nil {
		return nil, err
	}
	mobj, err := objs.Put(rawManifest)
	if err != nil {
		return nil, err
	}
	cobj, err := objs.Put(rawConfig)
	if err != nil {
		return nil, err
	}
	if err := objs.Sync(); err != nil {
		return nil, err
	}
	rec.Manifest, rec.Config = mobj.Hex(), cobj.Hex()
	// The caller's lock is held: CommitTree must not take it again.
	img, err := r.CommitTree(ctx, root, "", nm, repo.CreateOptions{Locked: true})
	if err != nil {
		return nil, err
	}
	rec.Image = img.Image
	if err := writeRecord(r, objs, rec, streams, nm); err != nil {
		return nil, err
	}
	res.Image = rec.Image
	return res, nil
}

// pullLayer returns a layer's entries and the digest of its split stream,
// from the repository if it has the layer, else from the source.
func pullLayer(ctx context.Context, r *repo.Repo, objs *store.Writer, s *source, l v1.Layer, desc v1.Descriptor,
	diffID v1.Hash, i, n int, progress func(Progress), lr *LayerResult) ([]entry, []byte, error) {
	report := func(p Progress) {
		if progress != nil {
			p.Layer, p.Layers, p.Digest = i, n, desc.Digest.String()
			progress(p)
		}
	}
	want, err := hex.DecodeString(diffID.Hex)
	if err != nil || len(want) != sha256.Size {
		return nil, nil, fmt.Errorf("invalid diff ID %s", diffID)
	}
	name := LayerStreamName(diffID.String())
	if d, err := resolveStream(r, name); err == nil {
		entries, err := storedLayer(r, d, want)
		if err != nil {
			return nil, nil, err
		}
		lr.Stored = true
		for _, e := range entries {
			if e.kind == entryAdd && e.mode&tree.ModeType == tree.ModeRegular {
				lr.Files++
			}
		}
		report(Progress{Stored: true, Done: desc.Size, Total: desc.Size, Finished: true})
		return entries, d, nil
	}

	var rc io.ReadCloser
	total := desc.Size
	if s.uncompressed {
		rc, err = l.Uncompressed()
		total = -1
	} else {
		rc, err = l.Compressed()
	}
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	report(Progress{Total: total})

	var read atomic.Int64
	pr, pw := io.Pipe()
	type result struct {
		sum [32]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		src := &countingReader{ctx: ctx, r: rc, n: &read, report: func(k int64) { report(Progress{Done: k, Total: total}) }}
		var verify *v1.Hash
		if s.verifyBlobs {
			verify = &desc.Digest
		}
		sum, err := decompress(pw, src, !s.uncompressed, verify, desc.Size)
		pw.CloseWithError(err)
		done <- result{sum, err}
	}()
	before, _ := objs.Stats()
	im := newImporter(r.Algorithm(), objs)
	entries, err := im.importTar(pr)
	if err != nil {
		pr.CloseWithError(err)
		if res := <-done; res.err != nil && !errors.Is(res.err, err) && !errors.Is(res.err, io.ErrClosedPipe) {
			// The source failed first: that is the error to tell.
			return nil, nil, res.err
		}
		return nil, nil, err
	}
	res := <-done
	if res.err != nil {
		return nil, nil, res.err
	}
	lr.Read = read.Load()
	report(Progress{Done: lr.Read, Total: total, Finished: true})
	if !bytes.Equal(res.sum[:], want) {
		return nil, nil, fmt.Errorf("the layer has diff ID sha256:%x, the configuration says %s", res.sum, diffID)
	}
	if err := objs.Flush(); err != nil {
		return nil, nil, err
	}
	lr.Files = im.files
	after, _ := objs.Stats()
	lr.NewObjects = after - before
	d, err := storeStream(r, objs, im.ss, res.sum, name)
	if err != nil {
		return nil, nil, err
	}
	return entries, d, nil
}

// storedLayer reads the entries of a layer from its split stream.
func storedLayer(r *repo.Repo, stream, diffID []byte) ([]entry, error) {
	ss, f, err := openStream(r, stream, splitstream.TarLayer)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer ss.Close()
	if h := ss.Header(); !bytes.Equal(h.SHA256[:], diffID) {
		return nil, fmt.Errorf("oci: split stream %s holds the layer sha256:%x, not sha256:%x", fsverity.Hex(stream), h.SHA256, diffID)
	}
	return replayLayer(ss)
}

// countingReader counts what is read, reports it now and then, and stops
// when its context is done.
type countingReader struct {
	ctx    context.Context
	r      io.Reader
	n      *atomic.Int64
	report func(int64)
	last   time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	k, err := c.r.Read(p)
	total := c.n.Add(int64(k))
	if now := time.Now(); now.Sub(c.last) >= 50*time.Millisecond {
		c.last = now
		c.report(total)
	}
	return k, err
}

// decompress copies the uncompressed content of src to dst (gzip and zstd
// are recognized by their magic numbers when compressed is set), and
// returns its SHA-256. With verify set, src's own SHA-256 and size are
// checked against it and size.
func decompress(dst io.Writer, src io.Reader, compressed bool, verify *v1.Hash, size int64) ([32]byte, error) {
	var sum [32]byte
	var blobHash hash.Hash
	var blobSize int64
	if verify != nil {
		if verify.Algorithm != "sha256" {
			return sum, fmt.Errorf("blob digest %s is not a sha256 digest", verify)
		}
		blobHash = sha256.New()
		src = io.TeeReader(src, countWriter{blobHash, &blobSize})
	}
	br := bufio.NewReaderSize(src, 256<<10)
	var dr io.Reader = br
	if compressed {
		magic, _ := br.Peek(4)
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			gz, err := gzip.NewReader(br)
			if err != nil {
				return sum, fmt.Errorf("gzip: %w", err)
			}
			defer gz.Close()
			dr = gz
		case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zd, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(1<<30))
			if err != nil {
				return sum, fmt.Errorf("zstd: %w", err)
			}
			defer zd.Close()
			dr = zd.IOReadCloser()
		}
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(io.MultiWriter(h, dst), onlyReader{dr}, buf); err != nil {
		return sum, err
	}
	// Read the blob to its end (a registry client checks its digest
	// there).
	if _, err := io.CopyBuffer(io.Discard, br, buf); err != nil {
		return sum, err
	}
	if verify != nil {
		if got := hex.EncodeToString(blobHash.Sum(nil)); got != verify.Hex || (size > 0 && blobSize != size) {
			return sum, fmt.Errorf("the blob has digest sha256:%s (%d bytes), expected %s (%d bytes)", got, blobSize, verify, size)
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return c.w.Write(p)
}
