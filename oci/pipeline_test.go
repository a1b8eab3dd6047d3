package oci

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gocfs/gocfs/repo"
)

// TestPullPausedDownload: a registry that sends half of a layer, nothing
// for longer than tailWait, then the rest: the import reading the
// download as it comes gives the repository lock up during the pause
// (garbage collection runs meanwhile), and the layer is imported once the
// download is complete: the pull succeeds and gives the image a pull
// without the pause gives. (The import through memory gives up at the
// pause, and the layer is fetched again through a file of the
// repository, which pauses too.)
func TestPullPausedDownload(t *testing.T) {
	requireRoot(t)
	img := testImage(t, smallLayers(7))
	d1 := must(must(img.Layers())[1].Digest())
	f := newFakeRegistry(t)
	f.push(img, "v1")
	paused := make(chan struct{})
	var pausedOnce sync.Once
	resume := make(chan struct{})
	f.blobHook = func(w http.ResponseWriter, r *http.Request, digest string, b fakeBlob) bool {
		if digest != d1.String() || r.Header.Get("Range") != "" {
			return false
		}
		w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
		half := len(b.data) / 2
		w.Write(b.data[:half])
		w.(http.Flusher).Flush()
		pausedOnce.Do(func() { close(paused) })
		<-resume
		w.Write(b.data[half:])
		return true
	}
	r := newTestRepo(t)
	type result struct {
		res *PullResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Pull(context.Background(), r, f.ref("test/img:v1"), PullOptions{Name: "img"})
		done <- result{res, err}
	}()
	<-paused
	time.Sleep(tailWait + 500*time.Millisecond)
	gcDone := make(chan error, 1)
	go func() {
		_, err := r.GC(context.Background(), repo.GCOptions{})
		gcDone <- err
	}()
	select {
	case err := <-gcDone:
		if err != nil {
			t.Errorf("gc: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("gc waits for the paused download: the import holds the lock")
	}
	close(resume)
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	want, err := Pull(context.Background(), newTestRepo(t), "oci:"+writeLayout(t, img, "v1")+":v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.res.Image != want.Image {
		t.Errorf("image %s, want %s", got.res.Image, want.Image)
	}
	// The import through memory gave up; the layer was fetched again,
	// through a file.
	if reqs := f.requestsFor("/blobs/" + d1.String()); len(reqs) != 2 {
		t.Errorf("blob requests %q: want two", reqs)
	}
	checkFsck(t, r)
}
