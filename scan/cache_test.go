package scan

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// laterClock makes the scans believe they start d from now, so that files
// written by the test are old enough to be kept in the cache.
func laterClock(t *testing.T, d time.Duration) {
	old := now
	now = func() time.Time { return time.Now().Add(d) }
	t.Cleanup(func() { now = old })
}

// cacheTree writes files of more than 64 bytes (not inlined) into a new
// directory.
func cacheTree(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for i, n := range names {
		data := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// scanCached scans dir with the cache at path (opened, used and saved) and
// returns the digests of its files by name, and the cache.
func scanCached(t *testing.T, dir, path string) (map[string]string, *DigestCache) {
	t.Helper()
	c, err := OpenDigestCache(path, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	root, err := Dir(dir, Options{Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, n := range root.Children {
		if n.IsRegular() {
			got[n.Name] = fsverity.Hex(n.Digest)
		}
	}
	return got, c
}

// wantDigest is the fs-verity digest of the file at p, computed here.
func wantDigest(t *testing.T, p string) string {
	t.Helper()
	d, err := fsverity.DigestFile(p, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return fsverity.Hex(d)
}

func TestCacheHits(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a", "b", "c")
	cache := filepath.Join(t.TempDir(), "cache")
	first, c := scanCached(t, dir, cache)
	if c.Hits() != 0 {
		t.Fatalf("first scan: %d hits", c.Hits())
	}
	before, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	second, c := scanCached(t, dir, cache)
	if after, err := os.Stat(cache); err != nil || !os.SameFile(before, after) {
		t.Errorf("a cache that learnt nothing was written again (%v)", err)
	}
	if c.Hits() != 3 || c.Discarded != "" {
		t.Fatalf("second scan: %d hits, discarded %q", c.Hits(), c.Discarded)
	}
	for name, d := range first {
		if second[name] != d || d != wantDigest(t, filepath.Join(dir, name)) {
			t.Errorf("%s: first %s, second %s", name, d, second[name])
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(cache)); len(ents) != 1 {
		t.Errorf("the cache's directory holds %d files (temporary files left?)", len(ents))
	}
}

// A file rewritten with the same size whose mtime is restored keeps every
// stat field but ctime: the cache must not give its old digest.
func TestCacheContentChangedSizeAndMtimeRestored(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a")
	p := filepath.Join(dir, "a")
	cache := filepath.Join(t.TempDir(), "cache")
	before, _ := scanCached(t, dir, cache)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a later ctime tick
	if err := os.WriteFile(p, bytes.Repeat([]byte{'z'}, int(st.Size())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, c := scanCached(t, dir, cache)
	if c.Hits() != 0 || after["a"] == before["a"] || after["a"] != wantDigest(t, p) {
		t.Fatalf("content changed, size and mtime restored: %d hits, digest %s (before %s, want %s)", c.Hits(), after["a"], before["a"], wantDigest(t, p))
	}
}

// A file removed and another created with its inode number, size and
// mtime must not get the first one's digest.
func TestCacheInodeReused(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a")
	p := filepath.Join(dir, "a")
	cache := filepath.Join(t.TempDir(), "cache")
	before, _ := scanCached(t, dir, cache)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	reused := false
	for i := 0; i < 50 && !reused; i++ {
		time.Sleep(time.Millisecond)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{'y'}, int(st.Size())), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		st2, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		reused = st2.Sys().(*syscall.Stat_t).Ino == ino
	}
	t.Logf("inode number reused: %v", reused)
	after, c := scanCached(t, dir, cache)
	if c.Hits() != 0 || after["a"] == before["a"] || after["a"] != wantDigest(t, p) {
		t.Fatalf("new file in an old inode: %d hits, digest %s (before %s, want %s)", c.Hits(), after["a"], before["a"], wantDigest(t, p))
	}
}

// Files changed in the second before the scan (or during it) are not
// kept: a change within the same timestamp tick would not show.
func TestCacheRacilyClean(t *testing.T) {
	dir := cacheTree(t, "a", "b")
	cache := filepath.Join(t.TempDir(), "cache")
	scanCached(t, dir, cache)
	_, c := scanCached(t, dir, cache)
	if c.Hits() != 0 {
		t.Fatalf("files written just now came from the cache (%d hits)", c.Hits())
	}
	c, err := OpenDigestCache(cache, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c.live != 0 {
		t.Fatalf("the cache kept %d entries of files written in the scan's second", c.live)
	}
}

// A cache file that is truncated, corrupt or of another algorithm is
// ignored (and says why), and the scan's digests are right.
func TestCacheDamaged(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a", "b")
	cache := filepath.Join(t.TempDir(), "cache")
	want, _ := scanCached(t, dir, cache)
	good, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	for _, c := range []struct {
		name, why string
		data      []byte
	}{
		{"truncated by one byte", "truncated", good[:len(good)-1]},
		{"truncated in the header", "truncated", good[:10]},
		{"empty", "truncated", nil},
		{"digest byte flipped", "checksum", flip(headerSize + entryFixed + 3)},
		{"inode flipped", "checksum", flip(headerSize + 8)},
		{"count changed", "truncated", flip(16)},
		{"other algorithm", "algorithm", flip(8)},
		{"bad magic", "magic", flip(0)},
		{"other format version", "magic", flip(7)},
		{"size flipped, length right", "checksum", flip(headerSize + entryFixed + 32 + 17)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(cache, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, dc := scanCached(t, dir, cache)
			if dc.Hits() != 0 || !strings.Contains(dc.Discarded, c.why) {
				t.Errorf("%d hits, discarded %q (want it to say %q)", dc.Hits(), dc.Discarded, c.why)
			}
			for name, d := range want {
				if got[name] != d {
					t.Errorf("%s: digest %s, want %s", name, got[name], d)
				}
			}
			// Rebuilt: the next scan uses it.
			if _, dc := scanCached(t, dir, cache); dc.Hits() != len(want) {
				t.Errorf("rebuilt cache: %d hits, want %d", dc.Hits(), len(want))
			}
		})
	}
}

func TestCacheBounded(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a", "b", "c", "d", "e")
	cache := filepath.Join(t.TempDir(), "cache")
	c, err := OpenDigestCache(cache, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	c.MaxEntries = 2
	if _, err := Dir(dir, Options{Cache: c}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(headerSize + 2*(entryFixed+32) + trailerSize); st.Size() != want {
		t.Errorf("cache of at most 2 entries has %d bytes, want %d", st.Size(), want)
	}
	c, err = OpenDigestCache(cache, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c.live != 2 {
		t.Errorf("%d entries read back, want 2", c.live)
	}
	// A file larger than the bound is not read at all.
	c.MaxEntries = 1
	f, _ := os.Open(cache)
	defer f.Close()
	if err := c.load(f); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized cache file: %v", err)
	}
}

// With Store and Stored, a cached file whose object is stored is neither
// opened nor stored again; one whose object is missing is stored.
func TestCacheStored(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a", "b")
	cache := filepath.Join(t.TempDir(), "cache")
	scanCached(t, dir, cache)
	c, err := OpenDigestCache(cache, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	root, err := Dir(dir, Options{Cache: c,
		Stored: func(d digest.Digest) (bool, error) { return d.Hex() == wantDigest(t, filepath.Join(dir, "a")), nil },
		Store: func(f *os.File, size int64) (digest.Digest, error) {
			stored++
			d, _, err := fsverity.MeasureOrCompute(f, fsverity.SHA256)
			if err != nil {
				return digest.Digest{}, err
			}
			return digest.New(fsverity.SHA256, d)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if stored != 1 || c.Hits() != 2 {
		t.Errorf("%d files stored (want 1: b), %d hits", stored, c.Hits())
	}
	for _, name := range []string{"a", "b"} {
		n := root.Lookup(name)
		if n == nil || n.Payload == "" || fsverity.Hex(n.Digest) != wantDigest(t, filepath.Join(dir, name)) {
			t.Errorf("%s: wrong digest or payload: %+v", name, n)
		}
	}
}

// A cached file's xattrs are those it has now: one with xattrs keeps them,
// one that gets an xattr after it was cached shows it.
func TestCacheXattrs(t *testing.T) {
	laterClock(t, 5*time.Second)
	dir := cacheTree(t, "a", "b")
	if err := unix.Lsetxattr(filepath.Join(dir, "a"), "user.gocfs", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	scanCached(t, dir, cache)
	time.Sleep(10 * time.Millisecond)
	if err := unix.Lsetxattr(filepath.Join(dir, "b"), "user.gocfs", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	c, err := OpenDigestCache(cache, fsverity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	root, err := Dir(dir, Options{Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "1", "b": "2"} {
		if got, _ := root.Lookup(name).GetXattr("user.gocfs"); string(got) != want {
			t.Errorf("%s: user.gocfs = %q, want %q", name, got, want)
		}
	}
	if c.Hits() != 1 {
		t.Errorf("%d hits, want 1 (a)", c.Hits())
	}
}

// A file with fs-verity enabled gets the digest the kernel measured, with
// the scan's algorithm only; a measurement that fails leaves it read.
func TestMeasuredNotRead(t *testing.T) {
	dir := cacheTree(t, "a", "b", "c")
	fake := bytes.Repeat([]byte{0xab}, 32)
	old, oldMay := measureVerity, mayHaveVerity
	t.Cleanup(func() { measureVerity, mayHaveVerity = old, oldMay })
	mayHaveVerity = func(uint64, uint64) bool { return true } // the test's file system says none has it
	measureVerity = func(fd int, name string) (fsverity.Algorithm, []byte, error) {
		switch filepath.Base(name) {
		case "a":
			return fsverity.SHA256, fake, nil
		case "b":
			return fsverity.SHA512, bytes.Repeat([]byte{1}, 64), nil
		}
		return 0, nil, unix.EINVAL
	}
	root, err := Dir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := root.Lookup("a").Digest; !bytes.Equal(got, fake) {
		t.Errorf("a: digest %x, want the measured %x", got, fake)
	}
	for _, name := range []string{"b", "c"} {
		if got := fsverity.Hex(root.Lookup(name).Digest); got != wantDigest(t, filepath.Join(dir, name)) {
			t.Errorf("%s: digest %s, want the computed one", name, got)
		}
	}
}

// benchDigest is the digest writeBenchCache gives the i-th file.
func benchDigest(i int) []byte {
	d := make([]byte, 32)
	binary.LittleEndian.PutUint64(d, uint64(i))
	return d
}

// A cache large enough to live in huge pages (internal/hugepages) finds
// every file by its exact status and no other, grows as files are added,
// and keeps the files used or added first when it is bounded.
func TestCacheLarge(t *testing.T) {
	const n = 20_000 // 1.7 MB of cache file
	sts := benchStats(2 * n)
	path := filepath.Join(t.TempDir(), "cache")
	writeBenchCache(t, path, sts[:n])
	c, err := OpenDigestCache(path, fsverity.SHA256)
	if err != nil || c.Discarded != "" || c.live != n {
		t.Fatalf("%v, discarded %q, %d files", err, c.Discarded, c.live)
	}
	// A byte in the middle of an entry changed, the length right: refused
	// by the checksum.
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[headerSize+(n/2)*(entryFixed+32)+20] ^= 0x40
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := OpenDigestCache(path, fsverity.SHA256); err != nil || !strings.Contains(b.Discarded, "checksum") || b.live != 0 {
		t.Fatalf("corrupt: %v, discarded %q, %d files", err, b.Discarded, b.live)
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	// Every other file is looked up, the others are changed.
	for i := 0; i < n; i += 2 {
		d, noXattrs, ok := c.lookup(&sts[i])
		if !ok || !bytes.Equal(d, benchDigest(i)) || !noXattrs {
			t.Fatalf("file %d: found %v, digest %x, noXattrs %v", i, ok, d, noXattrs)
		}
		changed := sts[i+1]
		changed.Ctim.Nsec ^= 1
		if _, _, ok := c.lookup(&changed); ok {
			t.Fatalf("file %d found with another ctime", i+1)
		}
	}
	for name, change := range map[string]func(*unix.Stat_t){
		"dev": func(st *unix.Stat_t) { st.Dev++ }, "ino": func(st *unix.Stat_t) { st.Ino++ },
		"size":  func(st *unix.Stat_t) { st.Size++ },
		"mtime": func(st *unix.Stat_t) { st.Mtim.Sec++ }, "mtime ns": func(st *unix.Stat_t) { st.Mtim.Nsec++ },
		"ctime": func(st *unix.Stat_t) { st.Ctim.Sec++ }, "ctime ns": func(st *unix.Stat_t) { st.Ctim.Nsec++ },
		"type": func(st *unix.Stat_t) { st.Mode = unix.S_IFLNK | 0o777 },
	} {
		st := sts[n-1]
		change(&st)
		if _, _, ok := c.lookup(&st); ok {
			t.Errorf("file found with another %s", name)
		}
	}
	// As many files again are added (the slots grow), one replaces a file
	// that was read.
	for i := n; i < 2*n; i++ {
		c.add(&sts[i], benchDigest(i), false)
	}
	changed := sts[1]
	changed.Size++
	c.add(&changed, benchDigest(-1), false)
	if c.live != 2*n || c.Hits() != n/2 {
		t.Fatalf("%d files, %d hits; want %d, %d", c.live, c.Hits(), 2*n, n/2)
	}
	// Unbounded, the file holds each file once, with its last entry.
	all := filepath.Join(t.TempDir(), "all")
	if err := os.WriteFile(all, c.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := OpenDigestCache(all, fsverity.SHA256); err != nil || a.live != 2*n || a.nfile != 2*n {
		t.Fatalf("unbounded: %v, %d files in %d entries, want %d", err, a.live, a.nfile, 2*n)
	} else if d, _, ok := a.lookup(&changed); !ok || !bytes.Equal(d, benchDigest(-1)) {
		t.Fatalf("unbounded: the replaced file's digest is %x (found %v)", d, ok)
	}
	c.MaxEntries = n/2 + n + 1
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c, err = OpenDigestCache(path, fsverity.SHA256)
	if err != nil || c.Discarded != "" || c.live != n/2+n+1 {
		t.Fatalf("%v, discarded %q, %d files, want %d", err, c.Discarded, c.live, n/2+n+1)
	}
	for i := range 2 * n {
		st, want := &sts[i], benchDigest(i)
		kept := i >= n || i%2 == 0 // used or added
		if i == 1 {
			st, want, kept = &changed, benchDigest(-1), true
		}
		d, noXattrs, ok := c.lookup(st)
		if ok != kept || ok && (!bytes.Equal(d, want) || noXattrs != (i < n && i != 1)) {
			t.Fatalf("file %d: found %v (want %v), digest %x, noXattrs %v", i, ok, kept, d, noXattrs)
		}
	}
}
