package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// FuzzDigestCache opens arbitrary digest cache files: entries of any
// content in a file whose header and checksum are right (count, when not
// zero, replacing the true number of entries), or, with raw, arbitrary
// bytes. A file with a wrong layout or checksum must be discarded; one
// that is right must give, for each file it holds (the last entry of a
// device and inode), that entry's digest for exactly its status, and the
// same again once saved and read back.
func FuzzDigestCache(f *testing.F) {
	es := entryFixed + fsverity.SHA256.Size()
	one := make([]byte, es)
	binary.LittleEndian.PutUint64(one[0:], 42)          // dev
	binary.LittleEndian.PutUint64(one[8:], 7)           // ino
	binary.LittleEndian.PutUint32(one[48:], 0o100000)   // regular file
	binary.LittleEndian.PutUint32(one[52:], 1)          // no xattrs
	copy(one[entryFixed:], bytes.Repeat([]byte{9}, 32)) // digest
	f.Add(one, false, uint16(0))
	again := bytes.Clone(one) // the same file, another digest: the later entry holds
	again[entryFixed] = 8
	f.Add(append(bytes.Clone(one), again...), false, uint16(0))
	f.Add(one, false, uint16(2))
	f.Add(cacheFile(one, 1), true, uint16(0))
	f.Add([]byte("gocfsDC\x01"), true, uint16(0))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, raw bool, count uint16) {
		path := filepath.Join(dir, "cache")
		file := data
		n := len(data) / es
		if !raw {
			data = data[:n*es]
			file = cacheFile(data, n)
			if count != 0 {
				binary.LittleEndian.PutUint64(file[16:], uint64(count))
			}
		}
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := OpenDigestCache(path, fsverity.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		wellFormed := !raw && (count == 0 || int(count) == n)
		if raw {
			wellFormed = wellFormedCache(file, es)
		}
		if wellFormed != (c.Discarded == "") {
			t.Fatalf("well formed %v, discarded %q", wellFormed, c.Discarded)
		}
		if c.Discarded != "" {
			checkCacheHolds(t, c, nil, es)
			return
		}
		if raw {
			data = file[headerSize : len(file)-trailerSize]
		}
		checkCacheHolds(t, c, data, es)
		// Saved and read back: the same files.
		c.path, c.dirty = filepath.Join(dir, "saved"), true
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		c2, err := OpenDigestCache(c.path, fsverity.SHA256)
		if err != nil || c2.Discarded != "" {
			t.Fatalf("the saved cache: %v, discarded %q", err, c2.Discarded)
		}
		checkCacheHolds(t, c2, data, es)
	})
}

// cacheFile returns a digest cache file of SHA-256 digests claiming n
// entries, body, and a right checksum.
func cacheFile(body []byte, n int) []byte {
	b := append([]byte(nil), cacheMagic[:]...)
	b = append(b, byte(fsverity.SHA256), 0, 0, 0, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	b = append(b, body...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// wellFormedCache tells whether file has a digest cache's layout (of
// SHA-256 digests) and a right checksum.
func wellFormedCache(file []byte, es int) bool {
	if len(file) < headerSize+trailerSize || !bytes.Equal(file[:8], cacheMagic[:]) || file[8] != byte(fsverity.SHA256) {
		return false
	}
	count := binary.LittleEndian.Uint64(file[16:24])
	if count > DefaultCacheEntries || uint64(len(file)) != uint64(headerSize+trailerSize)+count*uint64(es) {
		return false
	}
	sum := sha256.Sum256(file[:len(file)-trailerSize])
	return bytes.Equal(sum[:], file[len(file)-trailerSize:])
}

// checkCacheHolds checks that c gives, for each file of the entries in
// body (the last entry of each device and inode), its digest for exactly
// its status, and nothing for a status one field off.
func checkCacheHolds(t *testing.T, c *DigestCache, body []byte, es int) {
	last := make(map[string][]byte)
	for i := 0; i+es <= len(body); i += es {
		last[string(body[i:i+entryKey])] = body[i : i+es]
	}
	if c.live != len(last) {
		t.Fatalf("the cache holds %d files, its entries name %d", c.live, len(last))
	}
	le := binary.LittleEndian
	for _, e := range last {
		st := unix.Stat_t{Dev: le.Uint64(e[0:]), Ino: le.Uint64(e[8:]), Size: int64(le.Uint64(e[16:])), Mode: le.Uint32(e[48:])}
		st.Mtim.Sec, st.Ctim.Sec = int64(le.Uint64(e[24:])), int64(le.Uint64(e[32:]))
		st.Mtim.Nsec, st.Ctim.Nsec = int64(le.Uint32(e[40:])), int64(le.Uint32(e[44:]))
		d, noXattrs, ok := c.lookup(&st)
		exact := st.Mode&^unix.S_IFMT == 0
		if ok != exact || ok && (!bytes.Equal(d, e[entryFixed:]) || noXattrs != (le.Uint32(e[entryFlags:])&flagNoXattrs != 0)) {
			t.Fatalf("entry %x: lookup gave %x, %v, %v", e, d, noXattrs, ok)
		}
		st.Size++
		if _, _, ok := c.lookup(&st); ok {
			t.Fatalf("entry %x: found for another size", e)
		}
	}
}
