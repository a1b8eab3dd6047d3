package oci

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// registry is a docker-registry serving on 127.0.0.1 (testutil.Registry),
// with oci's push.
type registry struct {
	*testutil.Registry
	t    testing.TB
	addr string
}

// startRegistry starts a registry with its storage in a temporary
// directory, listening on 127.0.0.1 only.
func startRegistry(t testing.TB) *registry {
	t.Helper()
	reg := testutil.StartRegistry(t)
	return &registry{Registry: reg, t: t, addr: reg.Addr}
}

func (reg *registry) start() { reg.Start() }

// stop kills the registry (its storage stays).
func (reg *registry) stop() { reg.Stop() }

// push writes img to the registry as repo:tag and returns the reference.
func (reg *registry) push(img v1.Image, ref string) string {
	reg.t.Helper()
	full := reg.addr + "/" + ref
	r, err := name.ParseReference(full)
	if err != nil {
		reg.t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		reg.t.Fatalf("push %s: %v", full, err)
	}
	return full
}

func TestPullRegistry(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	layers := testLayers()
	img := testImage(t, layers)
	ref := reg.push(img, "gocfs/test:v1")
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)

	r := newTestRepo(t)
	res, err := Pull(context.Background(), r, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != ref {
		t.Errorf("name %q, want %q", res.Name, ref)
	}
	checkPulled(t, r, res, want)
	checkFsck(t, r)

	// A multi-platform image: the platform asked for is pulled.
	other := testImage(t, [][]member{{fileM("arm64", 0o644, []byte("arm64"))}})
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	iref, _ := name.ParseReference(reg.addr + "/gocfs/multi:latest")
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatal(err)
	}
	res, err = Pull(context.Background(), r, "docker://"+iref.String(), PullOptions{Platform: "linux/arm64", Name: "multi"})
	if err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	if res.ManifestDigest != od.String() {
		t.Errorf("pulled %s, want the arm64 image %s", res.ManifestDigest, od)
	}
	checkFsck(t, r)

	if _, err := Pull(context.Background(), r, reg.addr+"/gocfs/none:v1", PullOptions{}); err == nil {
		t.Errorf("pulled an image the registry does not have")
	}
}

// cutProxy forwards connections to a registry and cuts every connection,
// and refuses new ones, once limit bytes have come from the registry.
type cutProxy struct {
	ln     net.Listener
	target string
	limit  int64
	n      atomic.Int64
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t testing.TB, target string, limit int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, limit: limit}
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	go p.serve()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cutAll() {
	p.cut.Store(true)
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				k, err := u.Read(buf)
				if k > 0 {
					if p.n.Add(int64(k)) > p.limit {
						p.cutAll()
						return
					}
					if _, err := c.Write(buf[:k]); err != nil {
						return
					}
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// interruptLayers are the test layers with a big second layer, for a pull
// to be cut in the middle of.
func interruptLayers(size int) [][]member {
	layers := testLayers()
	layers[1] = append(layers[1], fileM("var/big2", 0o644, randBytes(11, size)))
	return layers
}

func TestPullInterruptedConnection(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	layers := interruptLayers(6 << 20)
	img := testImage(t, layers)
	reg.push(img, "gocfs/big:v1")
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)
	ls, _ := img.Layers()
	first, _ := ls[0].Size()

	// Cut the connection 2 MiB into the second layer.
	proxy := newCutProxy(t, reg.addr, first+2<<20)
	r := newTestRepo(t)
	_, err := Pull(context.Background(), r, proxy.addr()+"/gocfs/big:v1", PullOptions{Name: "big"})
	if err == nil {
		t.Fatal("pull through a cut connection succeeded")
	}
	t.Logf("interrupted pull: %v", err)
	checkFsck(t, r)
	if _, err := r.Resolve("big"); err == nil {
		t.Errorf("interrupted pull named an image")
	}

	res, err := Pull(context.Background(), r, reg.addr+"/gocfs/big:v1", PullOptions{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Layers[0].Stored || res.Layers[1].Stored {
		t.Errorf("retry: layers %+v (want the first stored, the second pulled)", res.Layers)
	}
	checkPulled(t, r, res, want)
	checkFsck(t, r)
}

func TestPullRegistryStopped(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	// Big enough that the registry has not sent it all (into socket
	// buffers) when it is stopped.
	layers := interruptLayers(24 << 20)
	img := testImage(t, layers)
	ref := reg.push(img, "gocfs/big:v1")
	want := filepath.Join(t.TempDir(), "rootfs")
	extract(t, want, layers)

	r := newTestRepo(t)
	var stopped atomic.Bool
	_, err := Pull(context.Background(), r, ref, PullOptions{Progress: func(p Progress) {
		if p.Layer == 1 && p.Fetching && p.Done > 0 && !stopped.Load() {
			stopped.Store(true)
			reg.stop()
		}
	}})
	if err == nil {
		t.Fatal("pull from a stopped registry succeeded")
	}
	if !stopped.Load() {
		t.Fatalf("pull failed before the registry stopped: %v", err)
	}
	t.Logf("interrupted pull: %v", err)
	checkFsck(t, r)

	reg.start()
	res, err := Pull(context.Background(), r, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Layers[0].Stored || res.Layers[1].Stored {
		t.Errorf("retry: layers %+v", res.Layers)
	}
	checkPulled(t, r, res, want)
	checkFsck(t, r)
	if !strings.Contains(res.Name, "gocfs/big:v1") {
		t.Errorf("name %q", res.Name)
	}
}
