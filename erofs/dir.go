package erofs

import (
	"bytes"
	"fmt"
	"sync"
)

// DirEntry is one directory entry as stored in the image.
type DirEntry struct {
	Name     string // as stored: may hold any byte but is never empty
	Nid      uint64
	FileType uint8 // FTRegFile, FTDir, ...
}

// blockPool holds buffers of the largest block size, for directory reads.
var blockPool = sync.Pool{New: func() any {
	b := make([]byte, BlockSize)
	return &b
}}

// ParseDirBlock decodes one directory block of n bytes (a full block, or
// the directory's last, shorter one). It checks what the kernel relies on:
// the first nameoff is a multiple of the dirent size inside the block,
// names follow the dirents in increasing order, and every name is 1 to
// MaxNameLen bytes long. The last name ends at the first NUL or at the end
// of the block.
func ParseDirBlock(b []byte) ([]DirEntry, error) {
	var ents []DirEntry
	err := scanDirBlock(b, func(n, i int, name []byte, nid uint64, ft uint8) bool {
		if ents == nil {
			ents = make([]DirEntry, 0, n)
		}
		ents = append(ents, DirEntry{Name: string(name), Nid: nid, FileType: ft})
		return true
	})
	if err != nil {
		return nil, err
	}
	return ents, nil
}

// scanDirBlock checks a directory block as ParseDirBlock documents and
// calls fn for each of its n entries, without allocating, until fn
// returns false. It checks the whole block before calling fn.
func scanDirBlock(b []byte, fn func(n, i int, name []byte, nid uint64, ft uint8) bool) error {
	if len(b) < DirentSize {
		return fmt.Errorf("directory block of %d bytes", len(b))
	}
	first := int(le.Uint16(b[8:]))
	if first < DirentSize || first >= len(b) || first%DirentSize != 0 {
		return fmt.Errorf("first nameoff %d in a block of %d bytes", first, len(b))
	}
	n := first / DirentSize
	name := func(i int) ([]byte, error) {
		d := b[i*DirentSize:]
		off := int(le.Uint16(d[8:]))
		end := len(b)
		if i+1 < n {
			end = int(le.Uint16(d[DirentSize+8:]))
			if end <= off || end > len(b) {
				return nil, fmt.Errorf("dirent %d: nameoff %d followed by %d", i, off, end)
			}
		}
		if off < first {
			return nil, fmt.Errorf("dirent %d: nameoff %d inside the dirents", i, off)
		}
		nm := b[off:end]
		if i+1 == n {
			if j := bytes.IndexByte(nm, 0); j >= 0 {
				nm = nm[:j]
			}
		}
		if len(nm) == 0 {
			return nil, fmt.Errorf("dirent %d: empty name", i)
		}
		if len(nm) > MaxNameLen {
			return nil, fmt.Errorf("dirent %d: name of %d bytes", i, len(nm))
		}
		return nm, nil
	}
	for i := range n {
		if _, err := name(i); err != nil {
			return err
		}
	}
	for i := range n {
		nm, _ := name(i)
		d := b[i*DirentSize:]
		if !fn(n, i, nm, le.Uint64(d), d[10]) {
			break
		}
	}
	return nil
}

// ReadDirBlocks calls fn for each block of the directory in order, with
// the block's offset in the directory and its entries, or the error
// ParseDirBlock found in it (then ents is nil). Errors reading the
// directory stop the iteration and are returned, as is any error fn
// returns. The directory's size must not exceed the image's.
func (in *Inode) ReadDirBlocks(fn func(off int64, ents []DirEntry, err error) error) error {
	if !in.IsDir() {
		return ErrNotDir
	}
	if in.Size > uint64(in.img.size) {
		return errNid(ErrCorrupt, in.Nid, in.Offset, "directory of %d bytes is larger than the image", in.Size)
	}
	size := int64(in.Size)
	bs := in.img.blksz
	bp := blockPool.Get().(*[]byte)
	defer blockPool.Put(bp)
	buf := *bp
	for pos := int64(0); pos < size; pos += bs {
		b := buf[:min(bs, size-pos)]
		if _, err := in.ReadAt(b, pos); err != nil {
			return err
		}
		ents, perr := ParseDirBlock(b)
		if perr != nil {
			perr = errNid(ErrCorrupt, in.Nid, -1, "directory block at %d: %v", pos, perr)
		}
		if err := fn(pos, ents, perr); err != nil {
			return err
		}
	}
	return nil
}

// ReadDirFunc calls fn for every entry of the directory, "." and ".."
// included, in on-disk order. It stops at the first malformed block or
// error from fn.
func (in *Inode) ReadDirFunc(fn func(DirEntry) error) error {
	return in.ReadDirBlocks(func(_ int64, ents []DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadDir returns all entries of the directory, "." and ".." included, in
// on-disk order.
func (in *Inode) ReadDir() ([]DirEntry, error) {
	var r []DirEntry
	err := in.ReadDirFunc(func(e DirEntry) error {
		r = append(r, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Lookup returns the entry called name, and false when there is none.
// It scans the directory without allocating per entry.
func (in *Inode) Lookup(name string) (DirEntry, bool, error) {
	if !in.IsDir() {
		return DirEntry{}, false, ErrNotDir
	}
	if in.Size > uint64(in.img.size) {
		return DirEntry{}, false, errNid(ErrCorrupt, in.Nid, in.Offset, "directory of %d bytes is larger than the image", in.Size)
	}
	size := int64(in.Size)
	bs := in.img.blksz
	bp := blockPool.Get().(*[]byte)
	defer blockPool.Put(bp)
	buf := *bp
	var found DirEntry
	ok := false
	for pos := int64(0); pos < size && !ok; pos += bs {
		b := buf[:min(bs, size-pos)]
		if _, err := in.ReadAt(b, pos); err != nil {
			return DirEntry{}, false, err
		}
		err := scanDirBlock(b, func(_, _ int, nm []byte, nid uint64, ft uint8) bool {
			if string(nm) == name {
				found, ok = DirEntry{Name: name, Nid: nid, FileType: ft}, true
				return false
			}
			return true
		})
		if err != nil {
			return DirEntry{}, false, errNid(ErrCorrupt, in.Nid, -1, "directory block at %d: %v", pos, err)
		}
	}
	return found, ok, nil
}
