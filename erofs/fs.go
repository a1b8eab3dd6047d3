package erofs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gocfs/gocfs/schema"
)

// maxSymlinkFollow bounds symlink resolution, as the kernel's MAXSYMLINKS.
const maxSymlinkFollow = 40

// FS is an [io/fs] view of an image. It implements [fs.FS],
// [fs.ReadDirFS], [fs.ReadFileFS], [fs.StatFS] and [fs.ReadLinkFS].
// Symbolic links are followed inside the image (absolute targets from the
// image's root) by Open, ReadFile, ReadDir and Stat, not by Lstat,
// ReadLink, Xattrs and Inode.
//
// With an object store, a regular file that carries a composefs redirect
// ([schema.Redirect]) reads its content from the store, at the path the
// redirect names ([schema.RedirectPayload]); its size and other metadata
// still come from the image. Without one, every file reads the data the
// image itself holds, as a bare EROFS mount shows it: composefs files read
// as zeros.
type FS struct {
	img     *Image
	objects fs.FS
	dirs    *DirGuard
}

// NewFS returns a file system view of img, reading redirected files'
// content from objects when it is not nil.
func NewFS(img *Image, objects fs.FS) *FS {
	return &FS{img: img, objects: objects, dirs: NewDirGuard(img)}
}

// FS returns a file system view of img with basedir, when not empty, as
// the object store.
func (img *Image) FS(basedir string) *FS {
	var objects fs.FS
	if basedir != "" {
		objects = os.DirFS(basedir)
	}
	return NewFS(img, objects)
}

var (
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// resolve returns the inode at name, following symlinks in every
// component, and in the last one too when follow is set.
func (f *FS) resolve(op, name string, follow bool) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	root, err := f.img.Inode(f.img.RootNid())
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	var todo []string
	if name != "." {
		todo = strings.Split(name, "/")
	}
	stack := []*Inode{root} // directories from the root to the current one
	links := 0
	for len(todo) > 0 {
		comp := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if !cur.IsDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		e, ok, err := cur.Lookup(comp)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		child, err := f.img.Inode(e.Nid)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if child.IsSymlink() && (len(todo) > 0 || follow) {
			links++
			if links > maxSymlinkFollow {
				return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ELOOP}
			}
			target, err := child.Readlink()
			if err != nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: err}
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if child.IsDir() {
			if err := f.dirs.Enter(cur.Nid, comp, child.Nid); err != nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: err}
			}
		}
		stack = append(stack, child)
	}
	return stack[len(stack)-1], nil
}

// Inode returns the inode at name, not following a final symlink.
func (f *FS) Inode(name string) (*Inode, error) { return f.resolve("inode", name, false) }

// Stat returns the file info of name, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// Lstat returns the file info of name, not following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// ReadLink returns the target of the symlink name.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	t, err := in.Readlink()
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// Xattrs returns the extended attributes of name (not following a final
// symlink) in on-disk order.
func (f *FS) Xattrs(name string) ([]Xattr, error) {
	in, err := f.resolve("listxattr", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := in.Xattrs()
	if err != nil {
		return nil, &fs.PathError{Op: "listxattr", Path: name, Err: err}
	}
	return xs, nil
}

// ReadDir returns the entries of directory name sorted by name, without
// "." and "..".
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	ents, err := f.dirEntries(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return ents, nil
}

func (f *FS) dirEntries(in *Inode) ([]fs.DirEntry, error) {
	if !in.IsDir() {
		return nil, syscall.ENOTDIR
	}
	var r []fs.DirEntry
	err := in.ReadDirFunc(func(e DirEntry) error {
		if e.Name == "." || e.Name == ".." {
			return nil
		}
		if strings.ContainsAny(e.Name, "/\x00") {
			return errNid(ErrCorrupt, in.Nid, -1, "directory entry %q", e.Name)
		}
		r = append(r, &dirEntry{img: f.img, e: e})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(r, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return r, nil
}

// ReadFile returns the content of the file name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	fl, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	r := fl.(*file)
	if r.in.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	if r.obj == nil {
		// The image's own data: never allocate more than the image holds.
		if r.size > f.img.size {
			return nil, &fs.PathError{Op: "read", Path: name, Err: errNid(ErrLimit, r.in.Nid, r.in.Offset, "file of %d bytes is larger than the image; use Open", r.size)}
		}
		b := make([]byte, r.size)
		if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
			return nil, err
		}
		return b, nil
	}
	var b []byte
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Open opens the file name, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fl := &file{fsys: f, name: name, in: in, size: int64(min(in.Size, 1<<63-1))}
	switch {
	case in.IsDir():
	case in.IsRegular():
		if f.objects != nil {
			obj, err := f.openObject(name, in)
			if err != nil {
				return nil, err
			}
			if obj != nil {
				fl.obj = obj
				fl.ra, _ = obj.(io.ReaderAt)
				break
			}
		}
		if _, err := in.dataMap(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		fl.ra = in
	case in.IsSymlink():
		fl.ra = in
	}
	return fl, nil
}

// openObject opens the object a redirected regular file's content is in;
// it returns nil for a file without a redirect.
func (f *FS) openObject(name string, in *Inode) (fs.File, error) {
	xs, err := in.Xattrs()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	for _, x := range xs {
		if x.FullName() != schema.Redirect {
			continue
		}
		p, ok := schema.RedirectPayload(x.Value)
		if !ok || !fs.ValidPath(p) || p == "." {
			return nil, &fs.PathError{Op: "open", Path: name, Err: errNid(ErrCorrupt, in.Nid, x.Offset, "redirect %q names no object in the store", schema.Shorten(string(x.Value)))}
		}
		obj, err := f.objects.Open(p)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return obj, nil
	}
	return nil, nil
}

// file is an open file of an FS.
type file struct {
	fsys *FS
	name string
	in   *Inode
	size int64
	off  int64
	ra   io.ReaderAt // inode data or object
	obj  fs.File     // object store file, or nil

	dir    []fs.DirEntry
	dirPos int
	dirOK  bool
}

var (
	_ fs.ReadDirFile = (*file)(nil)
	_ io.ReaderAt    = (*file)(nil)
	_ io.Seeker      = (*file)(nil)
)

func (fl *file) Stat() (fs.FileInfo, error) {
	return &fileInfo{name: path.Base(fl.name), in: fl.in}, nil
}

func (fl *file) Close() error {
	if fl.obj != nil {
		return fl.obj.Close()
	}
	return nil
}

// Read reads the file's content.
func (fl *file) Read(p []byte) (int, error) {
	if fl.ra == nil && fl.obj != nil {
		if fl.off >= fl.size {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), fl.size-fl.off)]
		n, err := fl.obj.Read(p)
		fl.off += int64(n)
		return n, err
	}
	n, err := fl.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads the file's content at off; the file's size is the one the
// image records, also for content in the object store.
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if fl.ra == nil {
		if fl.in.IsDir() {
			return 0, &fs.PathError{Op: "read", Path: fl.name, Err: syscall.EISDIR}
		}
		if fl.obj == nil {
			return 0, io.EOF
		}
		return 0, &fs.PathError{Op: "read", Path: fl.name, Err: errors.ErrUnsupported}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: fl.name, Err: fs.ErrInvalid}
	}
	if off >= fl.size {
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > fl.size-off {
		p = p[:fl.size-off]
		short = true
	}
	n, err := fl.ra.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		err = &fs.PathError{Op: "read", Path: fl.name, Err: err}
	}
	return n, err
}

// Seek sets the offset of the next Read.
func (fl *file) Seek(offset int64, whence int) (int64, error) {
	if fl.ra == nil && fl.obj != nil {
		return 0, &fs.PathError{Op: "seek", Path: fl.name, Err: errors.ErrUnsupported}
	}
	switch whence {
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += fl.size
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: fl.name, Err: fs.ErrInvalid}
	}
	fl.off = offset
	return offset, nil
}

// ReadDir reads the directory's entries, as [fs.ReadDirFile] specifies.
func (fl *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if !fl.in.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: fl.name, Err: syscall.ENOTDIR}
	}
	if !fl.dirOK {
		ents, err := fl.fsys.dirEntries(fl.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: fl.name, Err: err}
		}
		fl.dir, fl.dirOK = ents, true
	}
	rest := fl.dir[fl.dirPos:]
	if n <= 0 {
		fl.dirPos = len(fl.dir)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	fl.dirPos += len(rest)
	return rest, nil
}

// FileMode converts an inode mode to an [fs.FileMode].
func FileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch mode & ModeType {
	case ModeRegular:
	case ModeDir:
		m |= fs.ModeDir
	case ModeSymlink:
		m |= fs.ModeSymlink
	case ModeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case ModeBlock:
		m |= fs.ModeDevice
	case ModeFIFO:
		m |= fs.ModeNamedPipe
	case ModeSocket:
		m |= fs.ModeSocket
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// fileInfo is the fs.FileInfo of an inode. Sys returns the *Inode.
type fileInfo struct {
	name string
	in   *Inode
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return int64(min(fi.in.Size, 1<<63-1)) }
func (fi *fileInfo) Mode() fs.FileMode  { return FileMode(fi.in.Mode) }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.in.MtimeSec, int64(fi.in.MtimeNsec)) }
func (fi *fileInfo) IsDir() bool        { return fi.in.IsDir() }
func (fi *fileInfo) Sys() any           { return fi.in }

// fileTypeModes maps a dirent file type to the type bits of an fs.FileMode.
var fileTypeModes = [...]fs.FileMode{
	FTUnknown: fs.ModeIrregular,
	FTRegFile: 0,
	FTDir:     fs.ModeDir,
	FTChrdev:  fs.ModeDevice | fs.ModeCharDevice,
	FTBlkdev:  fs.ModeDevice,
	FTFifo:    fs.ModeNamedPipe,
	FTSock:    fs.ModeSocket,
	FTSymlink: fs.ModeSymlink,
}

// dirEntry is an fs.DirEntry; its type comes from the dirent, its info
// from the inode, read on demand.
type dirEntry struct {
	img *Image
	e   DirEntry
}

func (d *dirEntry) Name() string { return d.e.Name }
func (d *dirEntry) IsDir() bool  { return d.Type().IsDir() }
func (d *dirEntry) Type() fs.FileMode {
	if int(d.e.FileType) < len(fileTypeModes) {
		return fileTypeModes[d.e.FileType]
	}
	return fs.ModeIrregular
}
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.img.Inode(d.e.Nid)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: d.e.Name, in: in}, nil
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }
