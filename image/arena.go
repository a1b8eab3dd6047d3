package image

// arena hands out the writer's many small objects from large blocks, so
// that an image of a big tree costs a few large allocations instead of
// several per inode. What it hands out lives as long as the builder.
type arena struct {
	inodes []inode
	xs     []xattr
	bs     []byte
}

const arenaBlock = 1024 // inodes, xattrs or 64-byte units per block

// inode returns a new zero inode.
func (a *arena) inode() *inode {
	if len(a.inodes) == cap(a.inodes) {
		a.inodes = make([]inode, 0, arenaBlock)
	}
	a.inodes = a.inodes[:len(a.inodes)+1]
	return &a.inodes[len(a.inodes)-1]
}

// xattrs returns a slice of n zero xattrs with room for c: appending more
// than c reallocates, never touching a neighbour.
func (a *arena) xattrs(n, c int) []xattr {
	if c > arenaBlock/4 {
		return make([]xattr, n, c)
	}
	if cap(a.xs)-len(a.xs) < c {
		a.xs = make([]xattr, 0, arenaBlock)
	}
	s := a.xs[len(a.xs) : len(a.xs)+n : len(a.xs)+c]
	a.xs = a.xs[:len(a.xs)+c]
	return s
}

// bytes returns an empty byte slice with room for c bytes (appending more
// reallocates).
func (a *arena) bytes(c int) []byte {
	if c > 64*arenaBlock/4 {
		return make([]byte, 0, c)
	}
	if cap(a.bs)-len(a.bs) < c {
		a.bs = make([]byte, 0, 64*arenaBlock)
	}
	s := a.bs[len(a.bs) : len(a.bs) : len(a.bs)+c]
	a.bs = a.bs[:len(a.bs)+c]
	return s
}
