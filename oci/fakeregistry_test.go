package oci

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fakeRegistry is a registry on 127.0.0.1 that serves what it is given,
// the way a test wants: hostile, slow or failing.
type fakeRegistry struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	manifests map[string]fakeManifest // by tag and by digest
	blobs     map[string]fakeBlob     // by digest
	requests  []string                // "GET PATH [Range]"
	// blobHook, when set, may answer a blob request itself (it returns
	// true then).
	blobHook func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool
	// manifestHook, likewise, for manifests.
	manifestHook func(w http.ResponseWriter, r *http.Request, ref string) bool
}

type fakeManifest struct {
	data      []byte
	mediaType types.MediaType
	// digest is the Docker-Content-Digest header ("" for the content's,
	// "-" for none).
	digest string
}

// fakeBlob is a blob's content, or a function generating it.
type fakeBlob struct {
	data []byte
	size int64
	gen  func() io.Reader
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	f := &fakeRegistry{t: t, manifests: map[string]fakeManifest{}, blobs: map[string]fakeBlob{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// ref returns the reference of repository/tag in the registry.
func (f *fakeRegistry) ref(repoTag string) string {
	return strings.TrimPrefix(f.srv.URL, "http://") + "/" + repoTag
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")))
	f.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(p, "/manifests/"):
		ref := p[strings.LastIndex(p, "/")+1:]
		if f.manifestHook != nil && f.manifestHook(w, r, ref) {
			return
		}
		f.mu.Lock()
		m, ok := f.manifests[ref]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", string(m.mediaType))
		switch m.digest {
		case "":
			w.Header().Set("Docker-Content-Digest", sha256Hash(m.data).String())
		case "-":
		default:
			w.Header().Set("Docker-Content-Digest", m.digest)
		}
		w.Write(m.data)
	case strings.Contains(p, "/blobs/"):
		d := p[strings.LastIndex(p, "/")+1:]
		f.mu.Lock()
		b, ok := f.blobs[d]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		if f.blobHook != nil && f.blobHook(w, r, d, b) {
			return
		}
		if b.gen != nil {
			w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
			io.Copy(w, b.gen())
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.data))
	default:
		http.NotFound(w, r)
	}
}

// putBlob adds a blob and returns its digest.
func (f *fakeRegistry) putBlob(data []byte) v1.Hash {
	h := sha256Hash(data)
	f.mu.Lock()
	f.blobs[h.String()] = fakeBlob{data: data, size: int64(len(data))}
	f.mu.Unlock()
	return h
}

// putManifest adds a manifest under its digest and the given tags.
func (f *fakeRegistry) putManifest(data []byte, mt types.MediaType, tags ...string) v1.Hash {
	h := sha256Hash(data)
	f.mu.Lock()
	for _, k := range append(tags, h.String()) {
		f.manifests[k] = fakeManifest{data: data, mediaType: mt}
	}
	f.mu.Unlock()
	return h
}

// push adds an image (its blobs and manifest) as repository:tag. The
// repository does not matter: the fake serves any.
func (f *fakeRegistry) push(img v1.Image, tag string) v1.Hash {
	f.t.Helper()
	f.putBlob(must(img.RawConfigFile()))
	for _, l := range must(img.Layers()) {
		f.putBlob(must(io.ReadAll(must(l.Compressed()))))
	}
	return f.putManifest(must(img.RawManifest()), must(img.MediaType()), tag)
}

// requestsFor returns the requests whose path contains s.
func (f *fakeRegistry) requestsFor(s string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		if strings.Contains(r, s) {
			out = append(out, r)
		}
	}
	return out
}
