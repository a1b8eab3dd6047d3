package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
)

// maxIndexedDir is the largest fanout directory (in bytes, as stat
// reports its size) a Writer lists into its nameIndex; a larger one is
// searched name by name, as Store.Has does.
var maxIndexedDir int64 = 256 << 10

// A nameIndex lets a Writer tell that an object is missing from the store
// without looking its name up in a fanout directory. That lookup is what
// a write of many new objects mostly pays for: the directory's blocks are
// written out by each publication's syncfs, and a search of a directory
// waits for blocks under write, over and over.
//
// Each fanout directory the writer asks about is listed once, when it is
// first asked about, if it is small (maxIndexedDir). The index keeps 8
// bytes of each name (the digest's bytes after the directory's), and adds
// those of every object the writer links afterwards. A digest whose 8
// bytes are not there is not in the directory, unless a process other
// than this writer named it since: then the object is written once more,
// and its link finds the name there (fs.ErrExist), which a publication
// takes for success. A digest whose 8 bytes are there is looked up
// (Store.Has): the index never says an object is present.
//
// A writer's index lives as long as the writer. An object removed
// meanwhile needs no care: the key left behind only costs a lookup.
type nameIndex struct {
	mu   sync.Mutex
	dirs [256]*dirNames
}

// dirNames is the index of one fanout directory.
type dirNames struct {
	listed bool                // the listing is in keys
	keys   map[uint64]struct{} // nil: not indexed, look names up
}

// nameKey is what the index keeps of the digest b: its bytes 1 to 8
// (byte 0 names the directory).
func nameKey(b []byte) uint64 { return binary.LittleEndian.Uint64(b[1:9]) }

// absent reports whether the object d is certainly not in s: its
// directory is indexed and holds no name with d's key.
func (x *nameIndex) absent(s *Store, d digest.Digest) bool {
	var buf [64]byte
	b := d.AppendBytes(buf[:0])
	if d.Algorithm() != s.alg || len(b) < 9 {
		return false
	}
	x.mu.Lock()
	dn := x.dirs[b[0]]
	if dn == nil {
		dn = &dirNames{keys: make(map[uint64]struct{})}
		x.dirs[b[0]] = dn
		x.mu.Unlock()
		names, ok := s.listFanout(d.ObjectPath()[:2])
		x.mu.Lock()
		dn.add(names, ok, len(b))
	}
	defer x.mu.Unlock()
	if !dn.listed || dn.keys == nil {
		return false
	}
	_, ok := dn.keys[nameKey(b)]
	return !ok
}

// add puts a directory's listing into the index (ok false: it could not
// be listed, or is too large).
func (dn *dirNames) add(names []string, ok bool, size int) {
	dn.listed = true
	if !ok {
		dn.keys = nil
		return
	}
	var k [8]byte
	for _, n := range names {
		if !digest.IsHex(n, 2*size-2) {
			continue // no digest's name
		}
		hex.Decode(k[:], []byte(n[:16]))
		dn.keys[binary.LittleEndian.Uint64(k[:])] = struct{}{}
	}
}

// linked records that the writer named the object d (or found it named).
func (x *nameIndex) linked(d digest.Digest) {
	var buf [64]byte
	b := d.AppendBytes(buf[:0])
	if len(b) < 9 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if dn := x.dirs[b[0]]; dn != nil && dn.keys != nil {
		dn.keys[nameKey(b)] = struct{}{}
	}
}

// listFanout returns the names in the fanout directory xx (none if it
// does not exist), or ok false when it is larger than maxIndexedDir or
// cannot be listed.
func (s *Store) listFanout(xx string) (names []string, ok bool) {
	dir, err := s.lookupFanout(xx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(dir.Fd(), &st) != nil || st.Size > maxIndexedDir {
		return nil, false
	}
	ents, err := dir.ReadDir()
	if err != nil {
		return nil, false
	}
	names = make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name
	}
	return names, true
}
