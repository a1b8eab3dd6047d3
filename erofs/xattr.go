package erofs

// Xattr is one extended attribute as stored in the image.
type Xattr struct {
	Index  uint8  // e_name_index: which prefix the name has (0: none)
	Name   string // the name without that prefix, as stored (NULs included)
	Value  []byte
	Shared bool   // stored in the shared xattr area
	ID     uint32 // shared xattr id, when Shared
	Offset int64  // byte offset of the entry in the image
}

// XattrPrefix returns the name prefix that name index idx stands for, and
// whether idx is a known index. Index 0 has the empty prefix.
func XattrPrefix(idx uint8) (string, bool) {
	if idx == 0 {
		return "", true
	}
	p, ok := XattrPrefixes[idx]
	return p, ok
}

// FullName returns the xattr's name with its prefix.
func (x *Xattr) FullName() string {
	p, _ := XattrPrefix(x.Index)
	return p + x.Name
}

// XattrArea returns the offset and size of the inode's xattr area (the
// header, the shared xattr ids and the inline entries).
func (in *Inode) XattrArea() (off, size int64) {
	return in.Offset + in.InodeSize(), in.XattrSize()
}

// SharedXattrIDs returns the ids of the shared xattrs the inode refers to,
// in on-disk order.
func (in *Inode) SharedXattrIDs() ([]uint32, error) {
	area, err := in.xattrArea()
	if err != nil || area == nil {
		return nil, err
	}
	n := int(area[4])
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = le.Uint32(area[XattrHeaderSize+4*i:])
	}
	return ids, nil
}

// XattrFilter returns the inode's xattr name bloom filter (h_name_filter),
// and false when the inode has no xattr header.
func (in *Inode) XattrFilter() (uint32, bool, error) {
	area, err := in.xattrArea()
	if err != nil || area == nil {
		return 0, false, err
	}
	return le.Uint32(area), true, nil
}

// xattrArea reads the inode's xattr area and checks its header. It
// returns nil when the inode has no xattrs.
func (in *Inode) xattrArea() ([]byte, error) {
	off, size := in.XattrArea()
	if size == 0 {
		return nil, nil
	}
	area := make([]byte, size)
	if err := in.img.readMeta(area, off); err != nil {
		return nil, err
	}
	shared := int64(area[4])
	if XattrHeaderSize+shared*4 > size {
		return nil, errNid(ErrCorrupt, in.Nid, off, "%d shared xattr ids do not fit in an xattr area of %d bytes", shared, size)
	}
	return area, nil
}

// Xattrs returns the inode's extended attributes in on-disk order: the
// inline ones first, then the shared ones in the order the inode lists
// them (the order upstream composefs reads them in). Every entry must lie
// inside the xattr area or, for shared ones, inside the image; name
// indexes must be known ones.
func (in *Inode) Xattrs() ([]Xattr, error) {
	r, err := in.InlineXattrs()
	if err != nil {
		return nil, err
	}
	ids, err := in.SharedXattrIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		x, err := in.img.SharedXattr(id)
		if err != nil {
			if e, ok := err.(*Error); ok && !e.HasNid {
				e.Nid, e.HasNid = in.Nid, true
			}
			return nil, err
		}
		r = append(r, x)
	}
	return r, nil
}

// InlineXattrs returns the xattrs stored in the inode itself, in on-disk
// order.
func (in *Inode) InlineXattrs() ([]Xattr, error) {
	area, err := in.xattrArea()
	if err != nil || area == nil {
		return nil, err
	}
	areaOff := in.Offset + in.InodeSize()
	var r []Xattr
	p := XattrHeaderSize + 4*int(area[4])
	for p < len(area) {
		eoff := areaOff + int64(p)
		if len(area)-p < XattrEntrySize {
			return nil, errNid(ErrCorrupt, in.Nid, eoff, "truncated xattr entry")
		}
		nl, idx, vs := int(area[p]), area[p+1], int(le.Uint16(area[p+2:]))
		if _, ok := XattrPrefix(idx); !ok {
			return nil, errNid(ErrCorrupt, in.Nid, eoff, "unknown xattr name index %d", idx)
		}
		end := p + XattrEntrySize + nl + vs
		if end > len(area) {
			return nil, errNid(ErrCorrupt, in.Nid, eoff, "xattr entry of %d bytes overflows the xattr area", end-p)
		}
		name := area[p+XattrEntrySize : p+XattrEntrySize+nl]
		r = append(r, Xattr{
			Index:  idx,
			Name:   string(name),
			Value:  area[p+XattrEntrySize+nl : end : end],
			Offset: eoff,
		})
		p = (end + 3) &^ 3
	}
	return r, nil
}

// SharedXattr reads the shared xattr with the given id.
func (img *Image) SharedXattr(id uint32) (Xattr, error) {
	off := img.xattrOff + int64(id)*4
	var h [XattrEntrySize]byte
	if !img.inRange(off, XattrEntrySize) {
		return Xattr{}, errAt(ErrCorrupt, off, "shared xattr id %d beyond the end of the image", id)
	}
	if err := img.readMeta(h[:], off); err != nil {
		return Xattr{}, err
	}
	nl, idx, vs := int64(h[0]), h[1], int64(le.Uint16(h[2:]))
	if _, ok := XattrPrefix(idx); !ok {
		return Xattr{}, errAt(ErrCorrupt, off, "unknown name index %d in shared xattr %d", idx, id)
	}
	if !img.inRange(off+XattrEntrySize, nl+vs) {
		return Xattr{}, errAt(ErrCorrupt, off, "shared xattr %d beyond the end of the image", id)
	}
	b := make([]byte, nl+vs)
	if err := img.readMeta(b, off+XattrEntrySize); err != nil {
		return Xattr{}, err
	}
	return Xattr{
		Index:  idx,
		Name:   string(b[:nl]),
		Value:  b[nl:],
		Shared: true,
		ID:     id,
		Offset: off,
	}, nil
}
