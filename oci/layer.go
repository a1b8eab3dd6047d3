package oci

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	rsss "github.com/gocfs/gocfs/repo/splitstream"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// OCI whiteout names.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// memObjectMax is the largest file content read into memory before it is
// stored (so that content already in the repository is never written);
// larger files are written as they are read. (8 MiB was measured slower:
// the page faults of the larger buffers cost more than the overlap gave.)
const memObjectMax = 1 << 20

// entryKind says what a layer entry does to the rootfs.
type entryKind uint8

const (
	entryAdd      entryKind = iota // add or replace path
	entryWhiteout                  // remove path from lower layers
	entryOpaque                    // remove path's children from lower layers
)

// entry is one tar member's effect on the rootfs.
type entry struct {
	kind entryKind
	// path is cleaned and relative ("" for the root, "usr/bin" …).
	path string

	mode      uint32 // type and permission bits
	uid, gid  uint32
	rdev      uint64
	size      uint64
	mtimeSec  int64
	mtimeNsec uint32
	xattrs    []tree.Xattr // sorted by name
	// link is a symlink's target, or for a hard link the cleaned path of
	// the file it links to.
	link     string
	hardlink bool
	// content is a regular file's content when it is inline (at most
	// tree.RecommendedInlineMax bytes); digest is the fs-verity digest of
	// a non-empty regular file's content.
	content []byte
	digest  []byte
}

// layerError is an error about one member of a layer.
func layerError(name string, err error) error {
	return fmt.Errorf("oci: layer member %q: %w", schema.Shorten(name), err)
}

// cleanPath turns a tar member name into a relative path without "." or
// empty components ("" for the root). ".." components are refused.
func cleanPath(name string) (string, error) {
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", errors.New(`".." in the path`)
		}
		if err := tree.CheckName(c); err != nil {
			return "", err
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, "/"), nil
}

// toEntry turns a tar header into an entry; ok is false for members that
// do not change the rootfs (PAX global headers, aufs metadata).
func toEntry(hdr *tar.Header) (e entry, ok bool, err error) {
	p, err := cleanPath(hdr.Name)
	if err != nil {
		return e, false, layerError(hdr.Name, err)
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case hdr.Typeflag == tar.TypeXGlobalHeader:
		return e, false, nil
	case base == whiteoutOpaque:
		return entry{kind: entryOpaque, path: dir}, true, nil
	case strings.HasPrefix(base, whiteoutMeta):
		return e, false, nil // aufs's own files (.wh..wh.plnk …)
	case strings.HasPrefix(base, whiteoutPrefix):
		target := base[len(whiteoutPrefix):]
		if err := tree.CheckName(target); err != nil {
			return e, false, layerError(hdr.Name, err)
		}
		return entry{kind: entryWhiteout, path: path.Join(dir, target)}, true, nil
	}
	e = entry{path: p, mode: uint32(hdr.Mode) & tree.ModePerm}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-1 || int64(hdr.Gid) > 1<<32-1 {
		return e, false, layerError(hdr.Name, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid))
	}
	e.uid, e.gid = uint32(hdr.Uid), uint32(hdr.Gid)
	e.mtimeSec = hdr.ModTime.Unix()
	e.mtimeNsec = uint32(hdr.ModTime.Nanosecond())
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // (the tar reader gives TypeRegA as TypeReg)
		e.mode |= tree.ModeRegular
		if hdr.Size < 0 {
			return e, false, layerError(hdr.Name, fmt.Errorf("size %d", hdr.Size))
		}
		e.size = uint64(hdr.Size)
	case tar.TypeLink:
		if e.link, err = cleanPath(hdr.Linkname); err != nil || e.link == "" {
			return e, false, layerError(hdr.Name, fmt.Errorf("hard link to %q: %v", schema.Shorten(hdr.Linkname), err))
		}
		e.hardlink = true
		return e, true, nil // the rest is the target's
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return e, false, layerError(hdr.Name, tree.ErrEmptySymlink)
		}
		if len(hdr.Linkname) > tree.MaxPathLen {
			return e, false, layerError(hdr.Name, tree.ErrPathTooLong)
		}
		e.mode |= tree.ModeSymlink
		e.link = hdr.Linkname
		e.size = uint64(len(hdr.Linkname))
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Typeflag == tar.TypeChar {
			e.mode |= tree.ModeChar
		} else {
			e.mode |= tree.ModeBlock
		}
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
			return e, false, layerError(hdr.Name, fmt.Errorf("device %d:%d out of range", hdr.Devmajor, hdr.Devminor))
		}
		e.rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	case tar.TypeDir:
		e.mode |= tree.ModeDir
	case tar.TypeFifo:
		e.mode |= tree.ModeFIFO
	default:
		return e, false, layerError(hdr.Name, fmt.Errorf("unsupported tar member type %q", hdr.Typeflag))
	}
	if e.xattrs, err = tarXattrs(hdr); err != nil {
		return e, false, layerError(hdr.Name, err)
	}
	return e, true, nil
}

// tarXattrs returns a member's extended attributes, sorted by name: its
// PAX records SCHILY.xattr.NAME (the raw value), the only ones composefs-rs
// reads (tar-core's ParsedEntry.xattrs, crates/composefs-oci/src/tar.rs);
// libarchive's LIBARCHIVE.xattr.NAME records are ignored as there.
func tarXattrs(hdr *tar.Header) ([]tree.Xattr, error) {
	var xs []tree.Xattr
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, tree.Xattr{Name: name, Value: []byte(v)})
		}
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	return xs, nil
}

// isSparse reports whether a member's data is stored sparse (GNU old or
// PAX formats), so that what the archive holds is not the file's content.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// recorder is the reader under the tar reader during an import: what the
// tar reader consumes is inline data of the split stream, except a file's
// content while it is being stored as an object.
type recorder struct {
	r        io.Reader
	inline   []byte // inline data not yet handed to the sequencer
	tr       *tar.Reader
	external bool  // bytes read are an object's content, not inline data
	n        int64 // bytes read while external
}

func (rc *recorder) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if n > 0 {
		if rc.external {
			rc.n += int64(n)
		} else {
			rc.inline = append(rc.inline, p[:n]...)
		}
	}
	return n, err
}

// Bounds of the work in flight during an import.
const (
	objectWorkers = 2        // goroutines hashing and writing objects
	maxInFlight   = 64 << 20 // bytes of file content read but not stored
)

// errAbandoned is the error of the jobs left undone after another failed.
var errAbandoned = errors.New("oci: import abandoned")

// objectJob is a file's content to store as an object.
type objectJob struct {
	data   []byte // from contentBuf, given back once stored
	size   int64
	entry  int           // index of the file's entry
	done   chan struct{} // closed when digest or err is set
	digest []byte
	err    error
}

// chunkOp is the next piece of the split stream: inline data, then
// possibly an object (or just a reference to keep one alive).
type chunkOp struct {
	inline  []byte
	job     *objectJob
	refOnly bool
}

// importer turns one layer's tar stream into entries, objects and a split
// stream. The tar reader runs in the caller's goroutine; files are hashed
// and stored by a few workers, and a sequencer puts the split stream
// together in archive order as their digests come.
type importer struct {
	objs objectStore
	alg  fsverity.Algorithm
	ss   *rsss.Writer
	buf  []byte

	jobs   chan *objectJob
	ops    chan chunkOp
	budget chan struct{} // one token per MiB of content in flight
	all    []*objectJob
	wg     sync.WaitGroup // workers
	seqErr chan error     // the sequencer's result
	failed atomic.Bool    // a worker or the sequencer failed: stop reading

	// Counters for the caller.
	files int
}

// newLayerWriter starts a layer's split stream in composefs-rs's format,
// content type "ocilayer" (composefs-oci's TAR_LAYER_CONTENT_TYPE,
// crates/composefs-oci/src/skopeo.rs).
func newLayerWriter(alg fsverity.Algorithm) *rsss.Writer {
	w, err := rsss.NewWriter(alg, rsss.ContentTypeOCILayer)
	if err != nil {
		panic(err) // alg is the repository's, always valid
	}
	return w
}

func newImporter(alg fsverity.Algorithm, objs objectStore) *importer {
	return &importer{
		objs: objs,
		alg:  alg,
		ss:   newLayerWriter(alg),
		buf:  make([]byte, 256<<10),
	}
}

func (im *importer) start() {
	im.jobs = make(chan *objectJob, 64)
	im.ops = make(chan chunkOp, 1024)
	im.budget = make(chan struct{}, maxInFlight>>20)
	im.seqErr = make(chan error, 1)
	for range objectWorkers {
		im.wg.Add(1)
		go func() {
			defer im.wg.Done()
			for j := range im.jobs {
				if !im.failed.Load() {
					var d digest.Digest
					d, j.err = im.objs.Put(j.data)
					j.digest = d.Bytes()
				} else {
					j.err = errAbandoned
				}
				if j.err != nil {
					im.failed.Store(true)
				}
				putContentBuf(j.data)
				j.data = nil
				close(j.done)
				for range tokens(j.size) {
					<-im.budget
				}
			}
		}()
	}
	go func() {
		var err error
		for op := range im.ops {
			if err != nil {
				continue // drain
			}
			if len(op.inline) > 0 {
				if _, err = im.ss.Write(op.inline); err != nil {
					im.failed.Store(true)
					continue
				}
			}
			if op.job == nil {
				continue
			}
			<-op.job.done
			switch {
			case op.job.err != nil:
				err = op.job.err
			case op.refOnly:
				_, err = im.ss.AddObjectRef(objectDigest(im.alg, op.job.digest))
			default:
				err = im.ss.WriteExternal(objectDigest(im.alg, op.job.digest), uint64(op.job.size))
			}
			if err != nil {
				im.failed.Store(true)
			}
		}
		im.seqErr <- err
	}()
}

// contentBufs keeps the buffers of files read whole (at most
// memObjectMax bytes) for the next ones: class k holds buffers of 1<<k
// bytes. A pull reads a gigabyte of them; fresh ones would each be
// zeroed and faulted in.
var contentBufs [bits.UintSize]sync.Pool // of *[]byte

// contentBuf returns a buffer of n bytes (n > 0), its content undefined.
func contentBuf(n int) []byte {
	k := bits.Len(uint(n - 1))
	if p, _ := contentBufs[k].Get().(*[]byte); p != nil {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<k)
}

// putContentBuf gives b, from contentBuf, back for reuse; nothing may
// use it after.
func putContentBuf(b []byte) {
	k := bits.Len(uint(cap(b) - 1))
	if cap(b) == 0 || cap(b) != 1<<k {
		return
	}
	b = b[:cap(b)]
	contentBufs[k].Put(&b)
}

// tokens is the number of budget tokens a job of size bytes takes.
func tokens(size int64) int { return int(max(1, (size+(1<<20)-1)>>20)) }

// stop waits for the workers and the sequencer, and sets the entries'
// digests.
func (im *importer) stop(entries []entry) error {
	close(im.jobs)
	close(im.ops)
	im.wg.Wait()
	err := <-im.seqErr
	for _, j := range im.all {
		if j.err != nil && (err == nil || errors.Is(err, errAbandoned)) {
			err = j.err
		}
		if entries != nil {
			entries[j.entry].digest = j.digest
		}
	}
	return err
}

// emit hands the inline data read so far, and then the job if any, to the
// sequencer.
func (im *importer) emit(rc *recorder, job *objectJob, refOnly bool) {
	op := chunkOp{inline: rc.inline, job: job, refOnly: refOnly}
	rc.inline = nil
	im.ops <- op
}

// importTar reads an uncompressed tar stream to its end. File contents of
// more than tree.RecommendedInlineMax bytes become objects, referred to
// from the split stream; everything else the stream holds inline, so that
// the split stream reproduces r byte for byte. It returns the layer's
// entries in archive order.
func (im *importer) importTar(r io.Reader) (entries []entry, err error) {
	rc := &recorder{r: bufio.NewReaderSize(r, 256<<10)}
	im.start()
	defer func() {
		if serr := im.stop(entries); err == nil && serr != nil {
			entries, err = nil, serr
		}
	}()
	for {
		if im.failed.Load() {
			return nil, nil // stop tells why
		}
		if len(rc.inline) >= 1<<20 {
			im.emit(rc, nil, false)
		}
		hdr, err := tarReader(rc).Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("oci: reading the layer: %w", err)
		}
		e, ok, err := toEntry(hdr)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		entries = append(entries, e)
		if e.kind == entryAdd && e.mode&tree.ModeType == tree.ModeRegular && e.size > 0 {
			if err := im.content(tarReader(rc), rc, hdr, entries, len(entries)-1); err != nil {
				return nil, layerError(hdr.Name, err)
			}
		}
	}
	// What follows the end-of-archive marker (the rest of the last
	// record: tar pads archives with zeros) is part of the stream too.
	for {
		k, err := rc.Read(im.buf)
		if k > 0 && len(rc.inline) >= 1<<20 {
			im.emit(rc, nil, false)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("oci: reading the layer: %w", err)
		}
	}
	im.emit(rc, nil, false)
	return entries, nil
}

// tarReader returns the tar reader of rc (one per recorder).
func tarReader(rc *recorder) *tar.Reader {
	if rc.tr == nil {
		rc.tr = tar.NewReader(rc)
	}
	return rc.tr
}

// content stores a regular file's content: inline in the entry, or as an
// object.
func (im *importer) content(tr *tar.Reader, rc *recorder, hdr *tar.Header, entries []entry, idx int) error {
	e := &entries[idx]
	alg := im.alg
	im.files++
	if e.size <= tree.RecommendedInlineMax {
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if uint64(len(data)) != e.size {
			return fmt.Errorf("content is %d bytes, header says %d", len(data), e.size)
		}
		e.content = data
		e.digest = fsverity.Sum(data, alg)
		return nil
	}
	sparse := isSparse(hdr)
	if !sparse {
		// The inline data so far precedes the content.
		rc.external, rc.n = true, 0
	}
	job := &objectJob{size: int64(e.size), entry: idx, done: make(chan struct{})}
	im.all = append(im.all, job)
	if e.size <= memObjectMax {
		for range tokens(job.size) {
			im.budget <- struct{}{}
		}
		job.data = contentBuf(int(e.size))
		_, err := io.ReadFull(tr, job.data)
		rc.external = false
		if err != nil {
			putContentBuf(job.data)
			job.data = nil
			job.err = fmt.Errorf("reading %d bytes of content: %w", e.size, err)
			close(job.done)
			for range tokens(job.size) {
				<-im.budget
			}
			return job.err
		}
		im.emit(rc, job, sparse)
		im.jobs <- job
	} else {
		// Too big to hold: stored here as it is read.
		f, err := im.objs.Create()
		if err == nil {
			var n int64
			n, err = io.CopyBuffer(f, onlyReader{tr}, im.buf)
			if err == nil && uint64(n) != e.size {
				err = fmt.Errorf("content is %d bytes, header says %d", n, e.size)
			}
			if err != nil {
				f.Abort()
			} else {
				var d digest.Digest
				d, err = f.Commit()
				job.digest = d.Bytes()
			}
		}
		rc.external = false
		job.err = err
		close(job.done)
		if err != nil {
			return err
		}
		im.emit(rc, job, sparse)
	}
	if !sparse && uint64(rc.n) != e.size {
		return fmt.Errorf("read %d bytes of the archive for %d bytes of content", rc.n, e.size)
	}
	return nil
}

// onlyReader hides WriterTo so that io.CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// replayer reads a layer back from its split stream: the tar reader reads
// the inline data, and skips over objects (their content is not read: the
// object chunk at a file's content gives its digest).
type replayer struct {
	ss     layerSource
	inline []byte // unread inline data
	obj    *layerChunk
	objOff int64 // read (skipped) part of obj
	pos    int64
	err    error
}

func (rp *replayer) fill() error {
	for len(rp.inline) == 0 && (rp.obj == nil || rp.objOff == rp.obj.size) {
		if rp.err != nil {
			return rp.err
		}
		rp.obj = nil
		c, err := rp.ss.next()
		if err != nil {
			rp.err = err
			return err
		}
		if c.object != nil {
			c := c
			rp.obj, rp.objOff = &c, 0
		} else {
			rp.inline = c.inline
		}
	}
	return nil
}

func (rp *replayer) Read(p []byte) (int, error) {
	if err := rp.fill(); err != nil {
		return 0, err
	}
	if len(rp.inline) > 0 {
		n := copy(p, rp.inline)
		rp.inline = rp.inline[n:]
		rp.pos += int64(n)
		return n, nil
	}
	// Inside an object the tar reader is skipping: its content does
	// not matter here.
	n := int(min(int64(len(p)), rp.obj.size-rp.objOff))
	clear(p[:n])
	rp.objOff += int64(n)
	rp.pos += int64(n)
	return n, nil
}

// Seek supports the tar reader's skipping of file contents (whence
// io.SeekCurrent, forward only).
func (rp *replayer) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return rp.pos, errors.New("oci: replayer seeks forward only")
	}
	for off > 0 {
		if err := rp.fill(); err != nil {
			if err == io.EOF {
				break
			}
			return rp.pos, err
		}
		var k int64
		if len(rp.inline) > 0 {
			k = min(off, int64(len(rp.inline)))
			rp.inline = rp.inline[k:]
		} else {
			k = min(off, rp.obj.size-rp.objOff)
			rp.objOff += k
		}
		off -= k
		rp.pos += k
	}
	return rp.pos, nil
}

// objectHere returns the object chunk starting at the current position, if
// any.
func (rp *replayer) objectHere() *layerChunk {
	if len(rp.inline) > 0 {
		return nil
	}
	if rp.obj == nil || rp.objOff == rp.obj.size {
		if rp.fill() != nil {
			return nil
		}
	}
	if len(rp.inline) == 0 && rp.obj != nil && rp.objOff == 0 {
		return rp.obj
	}
	return nil
}

// replayLayer returns the entries of a layer stored as a split stream, as
// importTar returned them when the layer was imported.
func replayLayer(ss layerSource, alg fsverity.Algorithm) ([]entry, error) {
	rp := &replayer{ss: ss}
	tr := tar.NewReader(rp)
	var entries []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("oci: reading a stored layer: %w", err)
		}
		e, ok, err := toEntry(hdr)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if e.kind == entryAdd && e.mode&tree.ModeType == tree.ModeRegular && e.size > 0 {
			switch {
			case e.size <= tree.RecommendedInlineMax || isSparse(hdr):
				// Inline in the stream (or sparse): hash what the tar
				// reader gives.
				h := fsverity.New(alg)
				var data []byte
				if e.size <= tree.RecommendedInlineMax {
					data = make([]byte, 0, e.size)
				}
				n, err := io.Copy(h, io.TeeReader(tr, appendWriter{&data}))
				if err != nil {
					return nil, layerError(hdr.Name, err)
				}
				if uint64(n) != e.size {
					return nil, layerError(hdr.Name, fmt.Errorf("content is %d bytes, header says %d", n, e.size))
				}
				if e.size <= tree.RecommendedInlineMax {
					e.content = data
				}
				e.digest = h.Sum(nil)
			default:
				c := rp.objectHere()
				if c == nil || uint64(c.size) != e.size {
					return nil, layerError(hdr.Name, fmt.Errorf("%w: no object for the file's content", rsss.ErrCorrupt))
				}
				e.digest = c.object
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// appendWriter appends to a slice, unless it is nil (then it drops).
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	if *w.b != nil {
		*w.b = append(*w.b, p...)
	}
	return len(p), nil
}
