package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/atomicfile"
)

// DefaultCacheEntries is the number of files a [DigestCache] remembers
// unless told otherwise (about 90 MB of cache file with SHA-256).
const DefaultCacheEntries = 1 << 20

// now is time.Now, replaced by tests.
var now = time.Now

// cacheMagic starts every cache file; its last byte is the format version.
var cacheMagic = [8]byte{'g', 'o', 'c', 'f', 's', 'D', 'C', 1}

// Cache file layout, little-endian: a header, count entries of
// entryFixed+digest size bytes, and the SHA-256 of everything before it.
const (
	headerSize  = 24 // magic[8], algorithm u8, pad[7], count u64
	entryFixed  = 56 // dev, ino, size, mtime s, ctime s u64; mtime ns, ctime ns, mode, flags u32
	trailerSize = sha256.Size
)

// flagNoXattrs is the entry flag of cacheEntry.noXattrs.
const flagNoXattrs = 1

// fileKey names a file by its device and inode number.
type fileKey struct{ dev, ino uint64 }

// fileStamp is what proves a file unchanged since its digest was taken:
// with its key, every stat field that a change of content moves. ctime
// can't be set from user space, so a content change whose size and mtime
// are restored still moves it.
type fileStamp struct {
	size             int64
	mtimeSec         int64
	ctimeSec         int64
	mtimeNs, ctimeNs uint32
	mode             uint32 // the file type bits
}

type cacheEntry struct {
	key   fileKey
	stamp fileStamp
	used  bool // found or added since the cache was opened
	// noXattrs says that the file had no xattrs at all. Setting or
	// removing one moves ctime, so it holds while the stamp does.
	noXattrs bool
	digest   []byte
}

// DigestCache remembers the fs-verity digests of files by what proves them
// unchanged (device, inode, size, mtime and ctime in nanoseconds, file
// type), so that a scan of a tree hashed before reads only what changed.
// Set it as [Options.Cache]; [DigestCache.Save] writes it back.
//
// It never makes a digest wrong: an entry is used only when every field of
// the file's lstat matches, and, as git does with its index, an entry is
// not kept for a file whose mtime or ctime is not at least a second older
// than the scan that hashed it (a change in the same timestamp tick would
// not move them). The file is replaced atomically; one that is truncated,
// corrupt (checksum) or of another algorithm is ignored and rebuilt, never
// trusted. It holds at most MaxEntries files: those of the last scan
// first, then older ones.
type DigestCache struct {
	path string
	alg  fsverity.Algorithm
	// MaxEntries bounds the entries kept (DefaultCacheEntries).
	MaxEntries int
	// Discarded says why the cache file was not used ("" when it was used
	// or did not exist).
	Discarded string

	mu     sync.Mutex
	ents   []cacheEntry      // read from the file, then added
	index  map[fileKey]int32 // the entry of each file in ents
	cutoff time.Time         // files changed at or after it are not kept
	hits   int
	dirty  bool // entries added, or the file is to be replaced
}

// OpenDigestCache reads the digest cache at path for digests made with
// alg. A missing file gives an empty cache; an unreadable one an error; one
// that is truncated, corrupt or of another algorithm an empty cache whose
// Discarded says why.
func OpenDigestCache(path string, alg fsverity.Algorithm) (*DigestCache, error) {
	if !alg.Valid() {
		return nil, fmt.Errorf("scan: digest cache %s: %w", path, fsverity.ErrUnknownAlgorithm)
	}
	c := &DigestCache{path: path, alg: alg, MaxEntries: DefaultCacheEntries, index: make(map[fileKey]int32)}
	c.setStart(now())
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan: digest cache: %w", err)
	}
	defer f.Close()
	if err := c.load(f); err != nil {
		c.ents, c.index = nil, make(map[fileKey]int32)
		c.Discarded = err.Error()
		c.dirty = true
	}
	return c, nil
}

// setStart sets the time the scan starts: files changed within the second
// before it (or later) are not kept.
func (c *DigestCache) setStart(t time.Time) {
	c.cutoff = t.Truncate(time.Second).Add(-time.Second)
}

// Path returns the cache file's path.
func (c *DigestCache) Path() string { return c.path }

// Hits returns how many lookups found a digest.
func (c *DigestCache) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

func (c *DigestCache) entrySize() int { return entryFixed + c.alg.Size() }

// load reads the cache file f; an error says why it is not used.
func (c *DigestCache) load(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", c.path)
	}
	max := int64(headerSize + trailerSize + c.MaxEntries*c.entrySize())
	if st.Size() > max {
		return fmt.Errorf("%s has %d bytes, more than a cache of %d entries", c.path, st.Size(), c.MaxEntries)
	}
	b := make([]byte, st.Size()+1)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	b = b[:n]
	body, err := c.checkFile(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	es := c.entrySize()
	count := len(body) / es
	c.ents = make([]cacheEntry, count, count+count/8)
	c.index = make(map[fileKey]int32, count)
	for i := range count {
		c.ents[i] = c.decodeEntry(body[i*es : (i+1)*es])
		c.index[c.ents[i].key] = int32(i)
	}
	return nil
}

// checkFile checks a cache file's header, length and checksum, and returns
// its entries.
func (c *DigestCache) checkFile(b []byte) ([]byte, error) {
	if len(b) < headerSize+trailerSize {
		return nil, errors.New("truncated header")
	}
	if !bytes.Equal(b[:8], cacheMagic[:]) {
		return nil, errors.New("not a gocfs digest cache (bad magic)")
	}
	if a := fsverity.Algorithm(b[8]); a != c.alg {
		return nil, fmt.Errorf("digests of algorithm %d, not %v", a, c.alg)
	}
	count := binary.LittleEndian.Uint64(b[16:24])
	if count > uint64(c.MaxEntries) {
		return nil, fmt.Errorf("%d entries, more than %d", count, c.MaxEntries)
	}
	want := headerSize + int(count)*c.entrySize() + trailerSize
	if len(b) != want {
		return nil, fmt.Errorf("%d bytes where %d entries take %d (truncated?)", len(b), count, want)
	}
	sum := sha256.Sum256(b[:len(b)-trailerSize])
	if !bytes.Equal(sum[:], b[len(b)-trailerSize:]) {
		return nil, errors.New("checksum mismatch (corrupt)")
	}
	return b[headerSize : len(b)-trailerSize], nil
}

func (c *DigestCache) decodeEntry(b []byte) cacheEntry {
	le := binary.LittleEndian
	e := cacheEntry{key: fileKey{le.Uint64(b[0:]), le.Uint64(b[8:])}, stamp: fileStamp{
		size:     int64(le.Uint64(b[16:])),
		mtimeSec: int64(le.Uint64(b[24:])),
		ctimeSec: int64(le.Uint64(b[32:])),
		mtimeNs:  le.Uint32(b[40:]),
		ctimeNs:  le.Uint32(b[44:]),
		mode:     le.Uint32(b[48:]),
	}}
	e.noXattrs = le.Uint32(b[52:])&flagNoXattrs != 0
	e.digest = b[entryFixed:len(b):len(b)] // shares the file's buffer
	return e
}

func (c *DigestCache) appendEntry(b []byte, e *cacheEntry) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, e.key.dev)
	b = le.AppendUint64(b, e.key.ino)
	b = le.AppendUint64(b, uint64(e.stamp.size))
	b = le.AppendUint64(b, uint64(e.stamp.mtimeSec))
	b = le.AppendUint64(b, uint64(e.stamp.ctimeSec))
	b = le.AppendUint32(b, e.stamp.mtimeNs)
	b = le.AppendUint32(b, e.stamp.ctimeNs)
	b = le.AppendUint32(b, e.stamp.mode)
	var flags uint32
	if e.noXattrs {
		flags |= flagNoXattrs
	}
	b = le.AppendUint32(b, flags)
	return append(b, e.digest...)
}

func keyOf(st *unix.Stat_t) (fileKey, fileStamp) {
	return fileKey{st.Dev, st.Ino}, fileStamp{
		size:     st.Size,
		mtimeSec: st.Mtim.Sec, mtimeNs: uint32(st.Mtim.Nsec),
		ctimeSec: st.Ctim.Sec, ctimeNs: uint32(st.Ctim.Nsec),
		mode: st.Mode & unix.S_IFMT,
	}
}

// lookup returns the entry of the file of status st, if the cache has it
// for exactly that status.
func (c *DigestCache) lookup(st *unix.Stat_t) (cacheEntry, bool) {
	k, s := keyOf(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[k]
	if !ok || c.ents[i].stamp != s {
		return cacheEntry{}, false
	}
	c.ents[i].used = true
	c.hits++
	return c.ents[i], true
}

// add records d as the digest of the file whose status (taken before its
// content was read) is st, and whether it had no xattrs, unless the file
// changed too recently to tell a later change by its times.
func (c *DigestCache) add(st *unix.Stat_t, d []byte, noXattrs bool) {
	if len(d) != c.alg.Size() || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	k, s := keyOf(st)
	cut := c.cutoff.Unix()
	if s.mtimeSec >= cut || s.ctimeSec >= cut {
		return
	}
	c.mu.Lock()
	e := cacheEntry{key: k, stamp: s, used: true, noXattrs: noXattrs, digest: bytes.Clone(d)}
	c.dirty = true
	if i, ok := c.index[k]; ok {
		c.ents[i] = e
	} else if len(c.ents) < math.MaxInt32 {
		c.index[k] = int32(len(c.ents))
		c.ents = append(c.ents, e)
	}
	c.mu.Unlock()
}

// Save writes the cache back atomically (internal/atomicfile: a
// temporary file in the same directory, synced, renamed over the old one,
// the directory synced), so that a crash leaves the old cache or the new
// one. A cache that learnt nothing since it was read is not written
// again.
func (c *DigestCache) Save() error {
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	b := c.encode()
	c.dirty = false
	c.mu.Unlock()
	err := atomicfile.Write(c.path, 0o600, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("scan: digest cache %s: %w", c.path, err)
	}
	return nil
}

// encode returns the cache file's bytes: the entries used or added since
// the cache was opened, then the others, at most MaxEntries.
func (c *DigestCache) encode() []byte {
	n := min(len(c.ents), c.MaxEntries)
	b := make([]byte, headerSize, headerSize+n*c.entrySize()+trailerSize)
	copy(b, cacheMagic[:])
	b[8] = byte(c.alg)
	count := 0
	for _, used := range []bool{true, false} {
		for i := range c.ents {
			if count == n {
				break
			}
			// (An entry a later one of the same file replaced is dropped.)
			if e := &c.ents[i]; e.used == used && c.index[e.key] == int32(i) {
				b = c.appendEntry(b, e)
				count++
			}
		}
	}
	binary.LittleEndian.PutUint64(b[16:24], uint64(count))
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}
