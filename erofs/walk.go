package erofs

import "sync"

// DirGuard records, for each directory of an image, the directory entry
// through which it was first reached, and refuses a directory reached
// through another one: a directory hard link or a cycle, which only a
// hostile image has (the kernel refuses it too) and which would make a
// walk of the image endless or exponential. Reaching a directory again
// through the same entry is fine, as repeated lookups do. [Image.Walk],
// [FS] and the FUSE server all keep one. A DirGuard is safe for concurrent
// use.
type DirGuard struct {
	mu    sync.Mutex
	root  uint64
	max   int
	links map[uint64]dirLink // directory nid -> where it was reached from
}

// dirLink is the directory entry through which a directory was reached.
type dirLink struct {
	parent uint64
	name   string
}

// NewDirGuard returns a guard for img's directories, with the root
// entered (reached through no entry).
func NewDirGuard(img *Image) *DirGuard {
	root := img.RootNid()
	return &DirGuard{
		root:  root,
		max:   int(img.size/SlotSize) + 1,
		links: map[uint64]dirLink{root: {parent: root}},
	}
}

// Entered reports whether directory nid was entered (the root always is).
func (g *DirGuard) Entered(nid uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.links[nid]
	return ok
}

// Enter records that directory child was reached through the entry name
// of directory parent. It fails, with an error wrapping [ErrCorrupt], when
// child was reached through another entry before or is the root.
func (g *DirGuard) Enter(parent uint64, name string, child uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.links[child]
	if !ok {
		if len(g.links) >= g.max {
			return errNid(ErrLimit, child, -1, "more directories than the image has inodes")
		}
		g.links[child] = dirLink{parent, name}
		return nil
	}
	if child == g.root {
		return errNid(ErrCorrupt, child, -1, "the root directory reached through %q in nid %d: a cycle", name, parent)
	}
	if l.parent != parent || l.name != name {
		return errNid(ErrCorrupt, child, -1, "directory reached through two entries (%q in nid %d and %q in nid %d): hard link or cycle", l.name, l.parent, name, parent)
	}
	return nil
}

// WalkEntry is an inode [Image.Walk] reaches: the root, or a directory
// entry other than "." and "..".
type WalkEntry struct {
	// DirEntry is the entry; for the root, its Name is "/", its Nid the
	// root's and its FileType FTDir.
	DirEntry
	// Parent is the nid of the directory holding the entry (the root's own
	// for the root).
	Parent uint64
	// Depth is 0 for the root, 1 for its entries, and so on.
	Depth int
	// Again is set for an entry naming a directory the walk has entered
	// already, through another entry: a directory hard link or a cycle.
	// The walk does not enter it again.
	Again bool

	dir []byte // the parent directory's path ("" for the root)
}

// Path returns the entry's path from the root: "/" for the root, "/a/b"
// below it, with the names as stored. It is valid only during the call to
// the walk's visit function that the entry was passed to.
func (e *WalkEntry) Path() string {
	if e.Depth == 0 {
		return "/"
	}
	b := make([]byte, 0, len(e.dir)+1+len(e.Name))
	b = append(append(append(b, e.dir...), '/'), e.Name...)
	return string(b)
}

// walkFrame is a directory whose entries are being walked.
type walkFrame struct {
	nid     uint64
	ents    []DirEntry
	next    int
	pathLen int // length of the path buffer before this directory's name
}

// Walk walks the image's directory tree depth first, without recursion (a
// hostile image may nest directories very deeply), calling visit for the
// root and then for each entry other than "." and ".." of each directory
// it enters, in the order of the entries visit returned for it.
//
// visit decides what an entry is: for a directory to walk, it returns the
// directory's entries (read and checked as the caller sees fit); for
// anything else, nil. Walk enters each directory once, through the first
// entry naming it: an entry naming it again is visited with Again set and
// never entered, whatever visit returns, so the walk ends and its work is
// bounded by the image's size. Walk stops at the first error visit
// returns, and returns it.
//
// The path of the entry being visited is kept in one buffer, so a deep
// tree costs memory in proportion to its depth, not to the square of it.
func (img *Image) Walk(visit func(e *WalkEntry) ([]DirEntry, error)) error {
	g := NewDirGuard(img)
	root := img.RootNid()
	e := &WalkEntry{DirEntry: DirEntry{Name: "/", Nid: root, FileType: FTDir}, Parent: root}
	ents, err := visit(e)
	if err != nil || ents == nil {
		return err
	}
	var path []byte
	stack := []walkFrame{{nid: root, ents: ents}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next == len(top.ents) {
			path = path[:top.pathLen]
			stack = stack[:len(stack)-1]
			continue
		}
		d := top.ents[top.next]
		top.next++
		if d.Name == "." || d.Name == ".." {
			continue
		}
		parent, again := top.nid, g.Entered(d.Nid)
		*e = WalkEntry{DirEntry: d, Parent: parent, Depth: len(stack), Again: again, dir: path}
		ents, err := visit(e)
		if err != nil {
			return err
		}
		if ents == nil || again {
			continue
		}
		if err := g.Enter(parent, d.Name, d.Nid); err != nil {
			return err
		}
		n := len(path)
		path = append(append(path, '/'), d.Name...)
		stack = append(stack, walkFrame{nid: d.Nid, ents: ents, pathLen: n})
	}
	return nil
}
