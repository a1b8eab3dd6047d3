package verify

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/beneath"
)

// symlinkStore writes an image of files whose objects are in a new store,
// and returns the image, the store, and each file's object path.
func symlinkStore(t *testing.T, names ...string) (img []byte, base string, objs map[string]string) {
	t.Helper()
	base = filepath.Join(t.TempDir(), "objects")
	objs = map[string]string{}
	lines := []string{"/ 4096 40755 2 0 0 0 0.0 - - -"}
	for i, name := range names {
		data := bytes.Repeat([]byte{byte('a' + i)}, 5000+i)
		h := fsverity.Hex(fsverity.Sum(data, fsverity.SHA256))
		obj := h[:2] + "/" + h[2:]
		objs[name] = obj
		must(t, os.MkdirAll(filepath.Join(base, h[:2]), 0o755))
		must(t, os.WriteFile(filepath.Join(base, obj), data, 0o644))
		lines = append(lines, fmt.Sprintf("/%s %d 100644 1 0 0 0 0.0 %s - %s", name, len(data), obj, h))
	}
	root, err := dump.Parse(strings.NewReader(strings.Join(lines, "\n")+"\n"), dump.Options{})
	must(t, err)
	var buf bytes.Buffer
	must(t, image.Write(&buf, root, image.DefaultOptions))
	return buf.Bytes(), base, objs
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, img []byte, base string) *Report {
	t.Helper()
	r, err := Image(bytes.NewReader(img), int64(len(img)), Options{Basedir: base})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestObjectSymlinks: an object that is, or whose directory is, a symbolic
// link to a file with the right content outside the store is reported,
// never read through it (the kernel and FUSE refuse such objects), with
// openat2 and with the O_NOFOLLOW walk of kernels without it.
func TestObjectSymlinks(t *testing.T) {
	for _, mode := range []string{"openat2", "nofollow"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "nofollow" {
				defer beneath.WithoutOpenat2()()
			}
			img, base, objs := symlinkStore(t, "file", "dir", "fifo", "plain")
			if r := run(t, img, base); !r.OK || r.Stats.Checked != 4 {
				t.Fatalf("clean store: %+v", r)
			}
			outside := t.TempDir()

			// The object itself a symlink to a copy outside the store.
			p := filepath.Join(base, objs["file"])
			must(t, os.Rename(p, filepath.Join(outside, "file")))
			must(t, os.Symlink(filepath.Join(outside, "file"), p))

			// The object's directory a symlink to a copy outside.
			d := filepath.Join(base, filepath.Dir(objs["dir"]))
			must(t, os.Rename(d, filepath.Join(outside, "dir")))
			must(t, os.Symlink(filepath.Join(outside, "dir"), d))

			// A FIFO in an object's place: reported, without hanging.
			p = filepath.Join(base, objs["fifo"])
			must(t, os.Remove(p))
			must(t, unix.Mkfifo(p, 0o644))

			done := make(chan *Report)
			go func() { done <- run(t, img, base) }()
			var r *Report
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the check hangs on a FIFO")
			}
			got := map[string]string{}
			for _, p := range r.Problems {
				got[p.Path] = p.What + ": " + p.Why
			}
			for _, name := range []string{"/file", "/dir"} {
				if !strings.Contains(got[name], "symbolic link") {
					t.Errorf("%s: %q, want a symbolic link problem", name, got[name])
				}
			}
			if !strings.Contains(got["/fifo"], "not a regular file") {
				t.Errorf("/fifo: %q", got["/fifo"])
			}
			if len(r.Problems) != 3 || r.Stats.Checked != 4 {
				t.Errorf("problems:\n%v", r.Problems)
			}
		})
	}
}
