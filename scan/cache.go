package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/bits"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/atomicfile"
	"github.com/gocfs/gocfs/internal/hugepages"
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

// Where an entry's fields sit: its key (device, inode) and stamp (size,
// mtime and ctime seconds, their nanoseconds, file type) are the bytes
// before entryFlags, compared as they are; the digest follows the flags.
const (
	entryKey   = 16 // dev, ino
	entryFlags = 52 // key and stamp before it
)

// flagNoXattrs is the entry flag that says that the file had no xattrs at
// all. Setting or removing one moves ctime, so it holds while the stamp
// does.
const flagNoXattrs = 1

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

	mu sync.Mutex
	// Entries are kept as the file holds them, entrySize bytes each: those
	// read from the file (checked) in file, then those added since in
	// added. Entry i is file's i-th, or added's (i-nfile)-th; neither is
	// ever changed in place, so a digest handed out stays right.
	file   []byte
	added  []byte
	nfile  int
	slots  []uint64 // open addressing by key (slotEntry)
	seed   maphash.Seed
	live   int       // files in slots
	used   bitset    // entries found or added since the cache was opened
	dead   bitset    // entries a later one of the same file replaced
	cutoff time.Time // files changed at or after it are not kept
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
	c := &DigestCache{path: path, alg: alg, MaxEntries: DefaultCacheEntries, seed: maphash.MakeSeed()}
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
		c.reset()
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
	b := hugepages.Slice[byte](int(st.Size()) + 1)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	b = b[:n]
	body, err := c.checkLayout(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	// The checksum is verified while the index is built: nothing is looked
	// up before both are done, and the index is dropped (reset) when the
	// checksum is wrong.
	sumOK := make(chan bool, 1)
	go func() {
		sum := sha256.Sum256(b[:len(b)-trailerSize])
		sumOK <- bytes.Equal(sum[:], b[len(b)-trailerSize:])
	}()
	c.index(body)
	if !<-sumOK {
		return fmt.Errorf("%s: checksum mismatch (corrupt)", c.path)
	}
	return nil
}

// index indexes the entries of body, the file's.
func (c *DigestCache) index(body []byte) {
	c.file, c.nfile = body, len(body)/c.entrySize()
	c.slots = hugepages.Slice[uint64](slotsFor(c.nfile))
	c.used, c.dead = make(bitset, c.nfile/64+1), make(bitset, c.nfile/64+1)
	for i := range c.nfile {
		c.insert(int32(i))
	}
}

// reset empties the cache.
func (c *DigestCache) reset() {
	c.file, c.added, c.nfile, c.slots, c.live = nil, nil, 0, nil, 0
	c.used, c.dead = nil, nil
}

// checkLayout checks a cache file's header and length, and returns its
// entries; the checksum is load's to check.
func (c *DigestCache) checkLayout(b []byte) ([]byte, error) {
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
	return b[headerSize : len(b)-trailerSize], nil
}

// slotsFor returns the number of slots (a power of two) that hold n files
// at most half full.
func slotsFor(n int) int {
	return 1 << max(4, bits.Len(uint(2*n)))
}

// entry returns the bytes of entry i.
func (c *DigestCache) entry(i int32) []byte {
	es := c.entrySize()
	if int(i) < c.nfile {
		return c.file[int(i)*es : (int(i)+1)*es : (int(i)+1)*es]
	}
	j := int(i) - c.nfile
	return c.added[j*es : (j+1)*es : (j+1)*es]
}

// A slot holds 1+the entry of a file in its low 32 bits (0: empty) and the
// high 32 bits of the hash of its key in the others, so that most probes
// of other files are told apart without reading their entries.
const slotEntry = 1<<32 - 1

// find returns the slot of the file of key k (entryKey bytes), and its
// entry, or -1 and the empty slot where it goes.
func (c *DigestCache) find(k []byte) (slot int, i int32) {
	h := maphash.Bytes(c.seed, k)
	tag := h &^ slotEntry
	mask := len(c.slots) - 1
	for p := int(h) & mask; ; p = (p + 1) & mask {
		s := c.slots[p]
		if s == 0 {
			return p, -1
		}
		if s&^slotEntry == tag && bytes.Equal(c.entry(int32(s&slotEntry - 1))[:entryKey], k) {
			return p, int32(s&slotEntry - 1)
		}
	}
}

// insert indexes entry i by its key; an entry of the same file that it
// replaces is dead.
func (c *DigestCache) insert(i int32) {
	if 2*(c.live+1) > len(c.slots) {
		c.grow()
	}
	k := c.entry(i)[:entryKey]
	p, old := c.find(k)
	if old >= 0 {
		c.dead.set(int(old))
		c.used.clear(int(old))
	} else {
		c.live++
	}
	c.slots[p] = maphash.Bytes(c.seed, k)&^slotEntry | uint64(i+1)
}

// grow doubles the slots.
func (c *DigestCache) grow() {
	old := c.slots
	c.slots = hugepages.Slice[uint64](max(16, 2*len(old)))
	mask := len(c.slots) - 1
	for _, s := range old {
		if s != 0 {
			p := int(maphash.Bytes(c.seed, c.entry(int32(s&slotEntry - 1))[:entryKey])) & mask
			for c.slots[p] != 0 {
				p = (p + 1) & mask
			}
			c.slots[p] = s
		}
	}
}

// stampOf returns the key and stamp of the file of status st as an entry
// holds them.
func stampOf(st *unix.Stat_t) (b [entryFlags]byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], st.Dev)
	le.PutUint64(b[8:], st.Ino)
	le.PutUint64(b[16:], uint64(st.Size))
	le.PutUint64(b[24:], uint64(st.Mtim.Sec))
	le.PutUint64(b[32:], uint64(st.Ctim.Sec))
	le.PutUint32(b[40:], uint32(st.Mtim.Nsec))
	le.PutUint32(b[44:], uint32(st.Ctim.Nsec))
	le.PutUint32(b[48:], st.Mode&unix.S_IFMT)
	return b
}

// lookup returns the digest of the file of status st, and whether it had
// no xattrs, if the cache has it for exactly that status. The digest is
// the cache's: not to be changed.
func (c *DigestCache) lookup(st *unix.Stat_t) (d []byte, noXattrs, ok bool) {
	ks := stampOf(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == 0 {
		return nil, false, false
	}
	_, i := c.find(ks[:entryKey])
	if i < 0 {
		return nil, false, false
	}
	e := c.entry(i)
	if !bytes.Equal(e[:entryFlags], ks[:]) {
		return nil, false, false
	}
	c.used.set(int(i))
	c.hits++
	return e[entryFixed:], binary.LittleEndian.Uint32(e[entryFlags:])&flagNoXattrs != 0, true
}

// add records d as the digest of the file whose status (taken before its
// content was read) is st, and whether it had no xattrs, unless the file
// changed too recently to tell a later change by its times.
func (c *DigestCache) add(st *unix.Stat_t, d []byte, noXattrs bool) {
	if len(d) != c.alg.Size() || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	cut := c.cutoff.Unix()
	if st.Mtim.Sec >= cut || st.Ctim.Sec >= cut {
		return
	}
	ks := stampOf(st)
	var flags uint32
	if noXattrs {
		flags |= flagNoXattrs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nfile + len(c.added)/c.entrySize()
	if n >= math.MaxInt32 {
		return
	}
	if es := c.entrySize(); len(c.added)+es > cap(c.added) {
		// Grown as append would, in huge pages once large. (Digests
		// handed out keep the old array alive; it is never changed.)
		b := hugepages.Slice[byte](max(2*cap(c.added), 64*es))
		c.added = b[:copy(b, c.added)]
	}
	c.added = append(c.added, ks[:]...)
	c.added = binary.LittleEndian.AppendUint32(c.added, flags)
	c.added = append(c.added, d...)
	c.used.set(n)
	c.insert(int32(n))
	c.dirty = true
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
	n := min(c.live, c.MaxEntries)
	b := hugepages.Slice[byte](headerSize + n*c.entrySize() + trailerSize)[:headerSize]
	copy(b, cacheMagic[:])
	b[8] = byte(c.alg)
	total := c.nfile + len(c.added)/c.entrySize()
	count := 0
	for _, used := range []bool{true, false} {
		for i := 0; i < total && count < n; i++ {
			if c.used.has(i) == used && !c.dead.has(i) {
				b = append(b, c.entry(int32(i))...)
				count++
			}
		}
	}
	binary.LittleEndian.PutUint64(b[16:24], uint64(count))
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// bitset is a set of entry numbers.
type bitset []uint64

func (s bitset) has(i int) bool { return i/64 < len(s) && s[i/64]&(1<<(i%64)) != 0 }

func (s *bitset) set(i int) {
	for i/64 >= len(*s) {
		*s = append(*s, 0)
	}
	(*s)[i/64] |= 1 << (i % 64)
}

func (s bitset) clear(i int) {
	if i/64 < len(s) {
		s[i/64] &^= 1 << (i % 64)
	}
}
