package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Defaults of PullOptions.
const (
	// DefaultIdleTimeout is how long a pull waits for the registry to
	// send anything (a connection, response headers, the next bytes of a
	// body) before it gives up on the request.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultRetries is how many times a failed registry request is tried
	// again.
	DefaultRetries = 3
)

// Waits between tries of a registry request: retryBase before the first
// retry, twice as long before each next one, at most retryMax.
const (
	retryBase = 250 * time.Millisecond
	retryMax  = 8 * time.Second
)

// manifestAccept lists the manifest media types a pull takes.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ",")

// idleTransport gives up on a request when the other side sends nothing
// for idle: while connecting and waiting for the response headers, and
// during each read of the body. The error then wraps ErrStalled.
type idleTransport struct {
	inner http.RoundTripper
	idle  time.Duration
}

func (t *idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	stalled := fmt.Errorf("%w: nothing from %s for %s", ErrStalled, req.URL.Host, t.idle)
	timer := time.AfterFunc(t.idle, func() { cancel(stalled) })
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
			err = cause
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, timer: timer, idle: t.idle}
	return resp, nil
}

// idleBody is a response body whose reads give up after idle.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); errors.Is(cause, ErrStalled) {
			err = cause
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel(nil)
	return b.rc.Close()
}

// permanent marks an error that trying again would not mend (a local
// one, such as a full disk).
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// retryable reports whether a failed registry request may be tried again:
// network errors, stalls and the status codes of transient trouble, not
// content that fails its checks nor the registry's refusals.
func retryable(ctx context.Context, err error) bool {
	var p permanent
	var te *transport.Error
	switch {
	case ctx.Err() != nil, errors.As(err, &p),
		errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrTooLarge):
		return false
	case errors.As(err, &te):
		switch te.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

// withRetries runs op, and again after a wait while it fails in a way
// that may pass, at most retries more times.
func withRetries(ctx context.Context, retries int, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || attempt >= retries || !retryable(ctx, err) {
			if err != nil && attempt > 0 {
				err = fmt.Errorf("%w (tried %d times)", err, attempt+1)
			}
			return err
		}
		t := time.NewTimer(min(retryBase<<attempt, retryMax))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// registryClient reads manifests and blobs from a registry repository.
type registryClient struct {
	ref     name.Reference
	client  *http.Client
	retries int
}

// newRegistryClient authenticates to the registry of ref (credentials
// from opts.Keychain), through an idle-timed transport.
func newRegistryClient(ctx context.Context, ref name.Reference, opts *PullOptions) (*registryClient, error) {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := authn.Resolve(ctx, kc, ref.Context())
	if err != nil {
		return nil, fmt.Errorf("oci: credentials for %s: %w", ref.Context().RegistryStr(), err)
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	rt := &idleTransport{inner: base, idle: opts.IdleTimeout}
	var tr http.RoundTripper
	err = withRetries(ctx, opts.Retries, func() error {
		tr, err = transport.NewWithContext(ctx, ref.Context().Registry, auth, rt, []string{ref.Scope(transport.PullScope)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("oci: %s: %w", ref.Context().RegistryStr(), err)
	}
	return &registryClient{ref: ref, client: &http.Client{Transport: tr}, retries: opts.Retries}, nil
}

func (c *registryClient) url(kind, id string) string {
	repo := c.ref.Context()
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), kind, id)
}

func (c *registryClient) get(ctx context.Context, kind, id string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(kind, id), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return c.client.Do(req)
}

// manifest fetches the manifest or index d names, checked against d. With
// no digest in d, it fetches the reference's tag instead; the content must
// then have the digest the registry's Docker-Content-Digest header gives,
// if it sends one. It returns the content and the media type the registry
// says it has.
func (c *registryClient) manifest(ctx context.Context, what string, d v1.Descriptor) (data []byte, mt types.MediaType, err error) {
	id := c.ref.Identifier()
	if d.Digest.Algorithm != "" {
		id = d.Digest.String()
	}
	err = withRetries(ctx, c.retries, func() error {
		resp, err := c.get(ctx, "manifests", id, http.Header{"Accept": {manifestAccept}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			return err
		}
		mt = types.MediaType(strings.TrimSpace(strings.Split(resp.Header.Get("Content-Type"), ";")[0]))
		want := d
		if want.Digest.Algorithm == "" {
			if hdr := resp.Header.Get("Docker-Content-Digest"); hdr != "" {
				h, err := v1.NewHash(hdr)
				if err != nil {
					return permanent{fmt.Errorf("oci: %s: the registry's Docker-Content-Digest %q: %w", what, hdr, err)}
				}
				want = v1.Descriptor{Digest: h, Size: sizeUnknown}
				what += " (the digest is the registry's Docker-Content-Digest)"
			}
		}
		if want.Digest.Algorithm == "" {
			data, err = io.ReadAll(io.LimitReader(resp.Body, maxMetadataSize+1))
			if err == nil && len(data) > maxMetadataSize {
				err = fmt.Errorf("%w: %s is more than %d bytes", ErrTooLarge, what, maxMetadataSize)
			}
			return err
		}
		if want.Size != sizeUnknown && resp.ContentLength > want.Size {
			return tooLong(what, want.Digest, want.Size)
		}
		data, err = readBlob(what, want, resp.Body, maxMetadataSize)
		return err
	})
	return data, mt, err
}

// blobSink receives a blob being fetched.
type blobSink interface {
	io.Writer
	// reset drops what was written, for the blob to start over.
	reset() error
}

// lendingSink is a blobSink that lends the buffer a blob is read into,
// saving a copy.
type lendingSink interface {
	blobSink
	// buffer returns where to read the next bytes into.
	buffer() ([]byte, error)
	// commit adds the first n bytes of what buffer returned to the blob.
	commit(n int)
}

// fileSink stages a blob in a file.
type fileSink struct{ f *os.File }

func (s fileSink) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s fileSink) reset() error {
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	_, err := s.f.Seek(0, io.SeekStart)
	return err
}

// bufferSink holds a blob in memory.
type bufferSink struct{ b *bytes.Buffer }

func (s bufferSink) Write(p []byte) (int, error) { return s.b.Write(p) }
func (s bufferSink) reset() error                { s.b.Reset(); return nil }

// blob fetches the blob d names into w, checking it against d as it
// comes: more than d.Size bytes are refused as soon as they come, and the
// digest is checked at the end. A failed transfer is tried again (where
// the registry takes range requests, from where it stopped). progress,
// if not nil, is told the bytes fetched so far.
//
// A sink whose reader checks the digest (a checkedSink) has only the
// size checked here.
func (c *registryClient) blob(ctx context.Context, what string, d v1.Descriptor, w blobSink, progress func(int64)) error {
	h, err := hasherFor(what, d.Digest)
	if err != nil {
		return err
	}
	if cs, ok := w.(checkedSink); ok && cs.readerChecks() {
		h = nil
	}
	var n int64
	err = withRetries(ctx, c.retries, func() error {
		return c.blobOnce(ctx, what, d, w, h, &n, progress)
	})
	if err != nil || h == nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return mismatch(what, d.Digest, d.Size, got, n)
	}
	return nil
}

// checkedSink is a blobSink whose reader checks the blob's digest (a
// verifier): the download need not hash it too.
type checkedSink interface {
	readerChecks() bool
}

// blobOnce makes one request for a blob, for what follows the *n bytes
// fetched already.
func (c *registryClient) blobOnce(ctx context.Context, what string, d v1.Descriptor, w blobSink, h hash.Hash, n *int64, progress func(int64)) error {
	hdr := http.Header{}
	if *n > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", *n))
	}
	resp, err := c.get(ctx, "blobs", d.Digest.String(), hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case *n > 0 && resp.StatusCode == http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", *n)) {
			return fmt.Errorf("oci: %s: the registry answered a range request from byte %d with %q", what, *n, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if *n > 0 {
			if err := w.reset(); err != nil {
				return permanent{err}
			}
			if h != nil {
				h.Reset()
			}
			*n = 0
		}
		if resp.ContentLength > d.Size {
			return tooLong(what, d.Digest, d.Size)
		}
	default:
		return transport.CheckError(resp, http.StatusOK)
	}
	var buf []byte
	lend, _ := w.(lendingSink)
	if lend == nil {
		buf = make([]byte, 256<<10)
	}
	for {
		if lend != nil {
			if buf, err = lend.buffer(); err != nil {
				return permanent{fmt.Errorf("oci: staging %s: %w", what, err)}
			}
		}
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if *n+int64(k) > d.Size {
				return tooLong(what, d.Digest, d.Size)
			}
			if h != nil {
				h.Write(buf[:k])
			}
			if lend != nil {
				lend.commit(k)
			} else if _, err := w.Write(buf[:k]); err != nil {
				return permanent{fmt.Errorf("oci: staging %s: %w", what, err)}
			}
			*n += int64(k)
			if progress != nil {
				progress(*n)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if *n < d.Size && h != nil {
		// The response ended where the registry meant it to (a cut
		// connection is an error above): the blob is shorter. (Without
		// h, the sink's reader finds that out and names its digest.)
		return mismatch(what, d.Digest, d.Size, hex.EncodeToString(h.Sum(nil)), *n)
	}
	return nil
}
