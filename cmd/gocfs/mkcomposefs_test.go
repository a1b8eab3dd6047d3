package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/tree"
)

// mkcomposefs --digest-store while the source's files are rewritten (in
// place, same size) stores no object under a digest its content does not
// have, and an image it writes names only objects it stored.
func TestDigestStoreWhileSourceChanges(t *testing.T) {
	dir := t.TempDir()
	src, objects := filepath.Join(dir, "src"), filepath.Join(dir, "objects")
	const files = 260
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, files)
	for i := range files {
		sizes[i] = 2000 + rng.IntN(60000)
		if i%50 == 0 {
			sizes[i] = 1<<20 + rng.IntN(1<<20) // copied by the kernel
		}
		data := make([]byte, sizes[i])
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		os.MkdirAll(filepath.Join(src, string(rune('a'+i%5))), 0o755)
		if err := os.WriteFile(filepath.Join(src, string(rune('a'+i%5)), "f"+string(rune('A'+i/5))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // rewrites files in place, as fast as it can
		defer wg.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for k := 0; !stop.Load(); k++ {
			i := k % files
			f, err := os.OpenFile(filepath.Join(src, string(rune('a'+i%5)), "f"+string(rune('A'+i/5))), os.O_WRONLY, 0)
			if err != nil {
				continue
			}
			data := make([]byte, sizes[i])
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			f.WriteAt(data, 0)
			f.Close()
		}
	}()
	ok := 0
	for round := range 4 {
		img := filepath.Join(dir, "img.cfs")
		code, out := runGocfs(t, "mkcomposefs", "--digest-store="+objects, src, img)
		if code != 0 {
			t.Logf("round %d: mkcomposefs failed (the source changed under it): %s", round, out)
			continue
		}
		ok++
		checkImageObjects(t, img, objects)
	}
	stop.Store(true)
	wg.Wait()
	n := checkObjectNames(t, objects)
	t.Logf("%d of 4 runs succeeded; %d objects, each named by its content's digest", ok, n)
	if n == 0 {
		t.Fatal("no object stored")
	}
}

// checkObjectNames checks that every object's content has the digest its
// name says, and returns how many there are.
func checkObjectNames(t *testing.T, objects string) int {
	t.Helper()
	n, bad := 0, 0
	err := filepath.Walk(objects, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(objects, p)
		want, err := digest.ParseObjectPath(rel)
		if err != nil {
			t.Errorf("%s in the store: %v", rel, err)
			return nil
		}
		got, err := fsverity.DigestFile(p, want.Algorithm())
		if err != nil {
			return err
		}
		n++
		if !want.Equal(want.Algorithm(), got) {
			bad++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d of %d objects have content whose digest is not their name", bad, n)
	}
	return n
}

// checkImageObjects checks that every object the image refers to is in
// the store, with the digest the image gives it.
func checkImageObjects(t *testing.T, img, objects string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	root, err := image.Read(f, fi.Size(), image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root.Walk(func(p string, n *tree.Node) error {
		if n.Payload == "" || n.Content != nil {
			return nil
		}
		got, err := fsverity.DigestFile(filepath.Join(objects, n.Payload), fsverity.SHA256)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if string(got) != string(n.Digest) {
			t.Errorf("%s: the image says digest %x, its object %s has %x", p, n.Digest, n.Payload, got)
		}
		return nil
	})
}

// mkcomposefs --digest-cache prints the digest it prints without, on the
// first run (the cache is made) and the next (files come from the cache),
// and after a file's content changed with its size and mtime restored;
// a corrupt cache file is rebuilt, with a notice.
func TestMkcomposefsDigestCache(t *testing.T) {
	dir := t.TempDir()
	src, cache := filepath.Join(dir, "src"), filepath.Join(dir, "cache")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		data := make([]byte, 100+i*1000)
		for j := range data {
			data[j] = byte(i + j)
		}
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digestOf := func(args ...string) string {
		t.Helper()
		code, out := runGocfs(t, append([]string{"mkcomposefs", "--print-digest-only"}, append(args, src)...)...)
		if code != 0 {
			t.Fatalf("mkcomposefs %v: %s", args, out)
		}
		return out
	}
	time.Sleep(2 * time.Second) // files changed in the second before a scan are not cached
	want := digestOf()
	for i := range 2 {
		if got := digestOf("--digest-cache=" + cache); got != want {
			t.Fatalf("run %d with the cache: %s, without %s", i, got, want)
		}
	}
	p := filepath.Join(src, "fj")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, st.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	want2 := digestOf()
	if got := digestOf("--digest-cache=" + cache); got != want2 || want2 == want {
		t.Fatalf("after a content change: %s with the cache, %s without (before %s)", got, want2, want)
	}
	if err := os.WriteFile(cache, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := digestOf("--digest-cache=" + cache); !strings.Contains(got, "digest cache not used, rebuilt") || !strings.Contains(got, want2) {
		t.Fatalf("corrupt cache: %s", got)
	}
}
