package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/store"
)

// Kinds of problems Fsck reports (Problem.Kind).
const (
	// KindObjectCorrupt: an object's content does not have the digest
	// that is its name.
	KindObjectCorrupt = "object-corrupt"
	// KindObjectUnreadable: an object can't be read.
	KindObjectUnreadable = "object-unreadable"
	// KindObjectNoVerity: an object lacks fs-verity in a repository that
	// requires it.
	KindObjectNoVerity = "object-verity-missing"
	// KindObjectMissing: an image refers to an object that is not there.
	KindObjectMissing = "object-missing"
	// KindImageDamaged: an image refers to objects that are missing or
	// corrupt (listed in Objects).
	KindImageDamaged = "image-damaged"
	// KindImageCorrupt: an image's own object is corrupt or missing.
	KindImageCorrupt = "image-corrupt"
	// KindImageInvalid: an image does not read as a composefs image, or
	// refers to its content in a way the repository can't serve.
	KindImageInvalid = "image-invalid"
	// KindStreamDamaged: a split stream refers to objects that are
	// missing or corrupt (listed in Objects), or its own object is
	// corrupt.
	KindStreamDamaged = "stream-damaged"
	// KindStreamInvalid: a split stream's references can't be read.
	KindStreamInvalid = "stream-invalid"
	// KindBadLink: an entry of images/ or streams/ that is not a proper
	// link to an object.
	KindBadLink = "bad-link"
	// KindRefDangling: a reference to an image that is not there.
	KindRefDangling = "ref-dangling"
	// KindRefInvalid: an entry under images/refs/ that is not a valid
	// reference.
	KindRefInvalid = "ref-invalid"
	// KindUnexpected: a file that has no business in the repository.
	KindUnexpected = "unexpected-file"
)

// Problem is one thing Fsck found wrong.
type Problem struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Path is the file concerned, relative to the repository.
	Path string `json:"path"`
	// Object is the digest of the object concerned, if any.
	Object string `json:"object,omitempty"`
	// Image is the digest of the image concerned, if any, and Refs the
	// references that name it.
	Image string   `json:"image,omitempty"`
	Refs  []string `json:"refs,omitempty"`
	// Detail says what is wrong.
	Detail string `json:"detail"`
	// UsedBy lists, for a corrupt or missing object, every image that
	// refers to it.
	UsedBy []ImageUse `json:"used_by,omitempty"`
	// Streams lists, for a corrupt or missing object, every split stream
	// (streams/NAME) that refers to it.
	Streams []string `json:"streams,omitempty"`
	// Objects lists, for a damaged image or stream, the bad objects it
	// refers to.
	Objects []string `json:"objects,omitempty"`
}

// ImageUse is an image's use of an object.
type ImageUse struct {
	Image string   `json:"image"`
	Refs  []string `json:"refs,omitempty"`
	// Files are the paths in the image that have the object as content.
	Files []string `json:"files"`
}

// FsckResult is what Fsck checked and found.
type FsckResult struct {
	Algorithm string `json:"algorithm"`
	// Objects and Bytes count the objects checked and their size;
	// KernelVerified those of them whose digest the kernel measured
	// (fs-verity enabled) rather than Fsck computed.
	Objects        int   `json:"objects_checked"`
	Bytes          int64 `json:"bytes_checked"`
	KernelVerified int   `json:"objects_kernel_verified"`
	Images         int   `json:"images_checked"`
	Refs           int   `json:"refs_checked"`
	// Streams counts the stream links checked (streams/NAME and
	// streams/refs/NAME).
	Streams int `json:"streams_checked"`
	// Problems are what is wrong, sorted by kind and path.
	Problems []Problem `json:"problems"`
	// Leftovers are temporary files of interrupted operations (harmless;
	// GC removes them), relative to the repository.
	Leftovers []string `json:"leftovers"`
}

// OK reports whether no problem was found.
func (f *FsckResult) OK() bool { return len(f.Problems) == 0 }

// objectState is what Fsck found of one object.
type objectState struct {
	d    digest.Digest
	size int64
	kind string // what is wrong with it (a Kind constant), "" if nothing
	bad  string // what is wrong with it, in words
}

func (o *objectState) rel() string { return o.d.ObjectPath() }

// fsck is one run of Fsck.
type fsck struct {
	r       *Repo
	res     *FsckResult
	objects []*objectState
	byObj   map[digest.Digest]*objectState // nil: looked up, missing
	buf     []byte                         // for objects checked late
	refsOf  map[string][]string            // image -> references
	usedBy  map[digest.Digest][]ImageUse   // bad object -> images using it
}

// Fsck checks the repository: every object's content against its name
// (measured by the kernel where fs-verity is enabled, else computed), that
// every image link points at its object, that every image reads as a
// composefs image and every object it refers to is there and intact, and
// that every reference points at an image. Split streams are checked like
// images: every object and stream their references name must be there
// and intact. Each corrupt or missing
// object is reported with every image that uses it (and their references)
// and every stream, and each such image or stream is reported damaged.
// What is not where it should be (a symbolic link for a directory of the
// repository, a non-regular object) is reported, never followed. The
// repository lock is held shared.
func (r *Repo) Fsck(ctx context.Context) (*FsckResult, error) { return r.FsckWith(ctx, FsckOptions{}) }

// FsckWith is Fsck with options.
func (r *Repo) FsckWith(ctx context.Context, opts FsckOptions) (*FsckResult, error) {
	unlock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c := &fsck{r: r, res: &FsckResult{Algorithm: AlgorithmName(r.alg), Problems: []Problem{}, Leftovers: []string{}},
		byObj: make(map[digest.Digest]*objectState), usedBy: make(map[digest.Digest][]ImageUse)}
	if err := c.listObjects(ctx); err != nil {
		return nil, err
	}
	if !opts.MetadataOnly {
		if err := c.checkObjects(ctx); err != nil {
			return nil, err
		}
	}
	images, err := c.checkLinks()
	if err != nil {
		return nil, err
	}
	if err := c.checkImages(ctx, images); err != nil {
		return nil, err
	}
	streamUse, err := c.checkKeptStreams(ctx)
	if err != nil {
		return nil, err
	}
	c.reportObjects(streamUse)
	c.checkStreams()
	c.findLeftovers()
	sort.SliceStable(c.res.Problems, func(i, j int) bool {
		a, b := c.res.Problems[i], c.res.Problems[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Path < b.Path
	})
	sort.Strings(c.res.Leftovers)
	return c.res, nil
}

func (c *fsck) problem(p Problem) { c.res.Problems = append(c.res.Problems, p) }

// listObjects lists the objects, reporting what else is in the store.
func (c *fsck) listObjects(ctx context.Context) error {
	return c.r.st.Walk(ctx, func(e store.Entry) error {
		if e.Problem != "" {
			c.problem(Problem{Kind: KindUnexpected, Path: objectsDir + "/" + e.Path, Detail: e.Problem})
			return nil
		}
		o := &objectState{d: e.Digest, size: e.Size}
		c.objects = append(c.objects, o)
		c.byObj[o.d] = o
		return nil
	})
}

// checkObjects checks every object's digest, in parallel.
func (c *fsck) checkObjects(ctx context.Context) error {
	var total int64
	for _, o := range c.objects {
		total += o.size
	}
	p := c.r.startProgress("checking objects", total, true)
	defer p.finish()
	threads := c.r.opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var mu sync.Mutex
	bufs := sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(threads)
	for _, o := range c.objects {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			buf := bufs.Get().(*[]byte)
			res := c.r.st.Check(o.d, *buf, p.add)
			bufs.Put(buf)
			mu.Lock()
			c.record(o, res)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// record sets what Check found of o, and counts it.
func (c *fsck) record(o *objectState, res store.CheckResult) {
	c.res.Objects++
	c.res.Bytes += res.Read
	if res.Measured {
		c.res.KernelVerified++
		c.res.Bytes += o.size
	}
	switch err := res.Err; {
	case err == nil:
	case errors.Is(err, store.ErrCorrupt):
		o.kind, o.bad = KindObjectCorrupt, strings.TrimPrefix(err.Error(), store.ErrCorrupt.Error()+": ")
	case errors.Is(err, store.ErrNoVerity):
		o.kind, o.bad = KindObjectNoVerity, "no fs-verity, which the repository requires"
	case errors.Is(err, store.ErrUnexpected):
		o.kind, o.bad = KindUnexpected, err.Error()
	default:
		o.kind, o.bad = KindObjectUnreadable, "unreadable: "+err.Error()
	}
}

// lookup returns the state of object d, checking it if it was not listed:
// imports may run meanwhile (they hold the lock shared too), and an
// object linked after the listing is checked when an image refers to it.
// (Images are linked only after their objects.) nil means missing.
func (c *fsck) lookup(d digest.Digest) *objectState {
	if o, ok := c.byObj[d]; ok {
		return o
	}
	if c.buf == nil {
		c.buf = make([]byte, 256<<10)
	}
	res := c.r.st.Check(d, c.buf, nil)
	if errors.Is(res.Err, fs.ErrNotExist) {
		c.byObj[d] = nil
		return nil
	}
	o := &objectState{d: d, size: res.Read}
	if st, err := os.Lstat(c.r.ObjectPath(d)); err == nil {
		o.size = st.Size()
	}
	c.record(o, res)
	c.objects = append(c.objects, o)
	c.byObj[d] = o
	return o
}

// checkLinks checks the references and the image links, and returns the
// images.
func (c *fsck) checkLinks() ([]string, error) {
	refs, badRefs, err := c.r.readRefs()
	if err != nil {
		if !errors.Is(err, beneath.ErrSymlink) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		c.problem(Problem{Kind: KindUnexpected, Path: refsDir, Detail: err.Error()})
	}
	c.res.Refs = len(refs)
	c.refsOf = make(map[string][]string)
	for _, ref := range refs {
		c.refsOf[ref.Image] = append(c.refsOf[ref.Image], ref.Name)
	}
	for _, b := range badRefs {
		c.problem(Problem{Kind: KindRefInvalid, Path: b.path, Detail: b.detail})
	}
	images, badImages, err := c.r.readImageLinks()
	if err != nil {
		if !errors.Is(err, beneath.ErrSymlink) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		c.problem(Problem{Kind: KindUnexpected, Path: imagesDir, Detail: err.Error()})
	}
	for _, b := range badImages {
		c.problem(Problem{Kind: KindBadLink, Path: b.path, Detail: b.detail})
	}
	haveImage := make(map[string]bool)
	for _, im := range images {
		haveImage[im] = true
	}
	for _, ref := range refs {
		if !haveImage[ref.Image] {
			c.problem(Problem{Kind: KindRefDangling, Path: refsDir + "/" + ref.Name, Image: ref.Image, Refs: []string{ref.Name},
				Detail: fmt.Sprintf("reference %s points at image %s, which is not in the repository", ref.Name, ref.Image)})
		}
	}
	return images, nil
}

// checkImages checks each image and the objects it refers to, recording
// which images use which bad (corrupt or missing) objects.
func (c *fsck) checkImages(ctx context.Context, images []string) error {
	p := c.r.startProgress("checking images", int64(len(images)), false)
	defer p.finish()
	for _, im := range images {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.add(1)
		c.res.Images++
		d, _ := c.r.ParseDigest(im)
		c.checkImage(im, d)
	}
	return nil
}

// checkImage checks the image im, of digest d.
func (c *fsck) checkImage(im string, d digest.Digest) {
	path := imagesDir + "/" + im
	refs := c.refsOf[im]
	if o := c.lookup(d); o == nil || o.bad != "" {
		detail := "its object " + objectsDir + "/" + d.ObjectPath() + " is missing"
		if o != nil {
			detail = "its object " + objectsDir + "/" + d.ObjectPath() + " is bad: " + o.bad
		}
		c.problem(Problem{Kind: KindImageCorrupt, Path: path, Image: im, Object: d.Hex(), Refs: refs, Detail: detail})
		return
	}
	root, err := c.r.readImage(d)
	if err != nil {
		c.problem(Problem{Kind: KindImageInvalid, Path: path, Image: im, Refs: refs, Detail: err.Error()})
		return
	}
	uses, problems := c.r.objectsOf(root)
	if len(problems) > 0 {
		detail := problems[0]
		if len(problems) > 1 {
			detail += fmt.Sprintf(" (and %d more)", len(problems)-1)
		}
		c.problem(Problem{Kind: KindImageInvalid, Path: path, Image: im, Refs: refs, Detail: detail})
	}
	var bad []string
	nMissing := 0
	for _, u := range uses {
		o := c.lookup(u.digest)
		if o != nil && o.bad == "" {
			continue
		}
		if o == nil {
			nMissing++
		}
		bad = append(bad, u.digest.Hex())
		c.usedBy[u.digest] = append(c.usedBy[u.digest], ImageUse{Image: im, Refs: refs, Files: u.files})
	}
	if len(bad) > 0 {
		c.problem(Problem{Kind: KindImageDamaged, Path: path, Image: im, Refs: refs, Objects: bad,
			Detail: fmt.Sprintf("refers to %d missing and %d corrupt object(s)", nMissing, len(bad)-nMissing)})
	}
}

// reportObjects reports the bad objects, and the missing ones that images
// or streams refer to, with who uses them.
func (c *fsck) reportObjects(streamUse map[digest.Digest][]string) {
	for _, o := range c.objects {
		if o.bad == "" {
			continue
		}
		c.problem(Problem{Kind: o.kind, Path: objectsDir + "/" + o.rel(), Object: o.d.Hex(), Detail: o.bad,
			UsedBy: c.usedBy[o.d], Streams: streamUse[o.d]})
		delete(c.usedBy, o.d)
		delete(streamUse, o.d)
	}
	for d := range streamUse {
		if _, ok := c.usedBy[d]; !ok {
			c.usedBy[d] = nil
		}
	}
	for d, uses := range c.usedBy { // left: the missing ones
		streams := streamUse[d]
		detail := fmt.Sprintf("referred to by %d image(s), not in the repository", len(uses))
		if len(streams) > 0 {
			detail = fmt.Sprintf("referred to by %d image(s) and %d split stream(s), not in the repository", len(uses), len(streams))
		}
		c.problem(Problem{Kind: KindObjectMissing, Path: objectsDir + "/" + d.ObjectPath(), Object: d.Hex(),
			Detail: detail, UsedBy: uses, Streams: streams})
	}
}

// checkKeptStreams checks the split streams (both composefs-rs's format
// and gocfs's earlier one): their own objects and those they refer to (looked up,
// and checked if not yet). It returns, for each bad (corrupt or missing)
// object, the streams that refer to it.
func (c *fsck) checkKeptStreams(ctx context.Context) (map[digest.Digest][]string, error) {
	names, err := c.r.streamLinks()
	if err != nil {
		if !errors.Is(err, beneath.ErrSymlink) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		c.problem(Problem{Kind: KindUnexpected, Path: streamsDir, Detail: err.Error()})
	}
	sort.Strings(names)
	streamUse := make(map[digest.Digest][]string) // object -> streams/NAME
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.checkKeptStream(name, streamUse)
	}
	return streamUse, nil
}

// checkKeptStream checks streams/name: its object and those its
// references name (Repo.StreamLinks).
func (c *fsck) checkKeptStream(name string, streamUse map[digest.Digest][]string) {
	path := streamsDir + "/" + name
	target, err := c.r.readlink(path)
	if err != nil {
		return // checkStreams reports it
	}
	rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
	d, err := c.r.ParseObjectRel(rel)
	if !ok || err != nil {
		c.problem(Problem{Kind: KindBadLink, Path: path, Detail: fmt.Sprintf("points at %q, not at an object", target)})
		return
	}
	o := c.lookup(d)
	if o == nil {
		return // checkStreams reports it
	}
	if o.bad != "" {
		streamUse[d] = append(streamUse[d], path)
		c.problem(Problem{Kind: KindStreamDamaged, Path: path, Object: d.Hex(),
			Detail: "its object " + objectsDir + "/" + d.ObjectPath() + " is bad: " + o.bad})
		return
	}
	objects, streams, err := c.r.StreamLinks(d)
	refs := append(objects, streams...)
	if err != nil {
		c.problem(Problem{Kind: KindStreamInvalid, Path: path, Object: d.Hex(), Detail: err.Error()})
		return
	}
	if i := slices.IndexFunc(refs, func(ref digest.Digest) bool { return ref.Algorithm() != c.r.alg }); i >= 0 {
		c.problem(Problem{Kind: KindStreamInvalid, Path: path, Object: d.Hex(),
			Detail: fmt.Sprintf("refers to a %d-byte digest in a %s repository", refs[i].Size(), c.r.alg)})
		return
	}
	var bad []string
	nMissing := 0
	seen := make(map[digest.Digest]bool, len(refs))
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		o := c.lookup(ref)
		if o != nil && o.bad == "" {
			continue
		}
		if o == nil {
			nMissing++
		}
		bad = append(bad, ref.Hex())
		streamUse[ref] = append(streamUse[ref], path)
	}
	if len(bad) > 0 {
		c.problem(Problem{Kind: KindStreamDamaged, Path: path, Object: d.Hex(), Objects: bad,
			Detail: fmt.Sprintf("refers to %d missing and %d corrupt object(s)", nMissing, len(bad)-nMissing)})
	}
}

// checkStreams checks that stream links and references resolve (the
// streams are checked further by checkKeptStreams). The
// directories are walked beneath the repository.
func (c *fsck) checkStreams() {
	dir, err := c.r.root.Dir(streamsDir, false)
	if err != nil {
		return // not there, or reported by checkKeptStreams
	}
	defer dir.Close()
	c.walkStreams(dir, streamsDir)
}

func (c *fsck) walkStreams(dir *beneath.Dir, rel string) {
	ents, err := dir.ReadDir()
	if err != nil {
		c.problem(Problem{Kind: KindUnexpected, Path: rel, Detail: err.Error()})
		return
	}
	for _, e := range ents {
		p := rel + "/" + e.Name
		switch {
		case e.Type.IsDir():
			if sub, err := dir.Dir(e.Name, false); err == nil {
				c.walkStreams(sub, p)
				sub.Close()
			}
		case e.Type&fs.ModeSymlink == 0:
			c.problem(Problem{Kind: KindBadLink, Path: p, Detail: "not a symlink"})
		default:
			c.res.Streams++
			if _, err := os.Stat(filepath.Join(c.r.dir, p)); err != nil {
				c.problem(Problem{Kind: KindBadLink, Path: p, Detail: "does not resolve: " + err.Error()})
			}
		}
	}
}

// findLeftovers lists tmp/, or reports it if it is not a directory of the
// repository.
func (c *fsck) findLeftovers() {
	r := c.r
	if r.tmp == nil {
		if !errors.Is(r.tmpErr, fs.ErrNotExist) {
			c.problem(Problem{Kind: KindUnexpected, Path: tmpDir, Detail: r.tmpErr.Error()})
		}
		return
	}
	ents, _ := r.tmp.ReadDir()
	for _, e := range ents {
		c.res.Leftovers = append(c.res.Leftovers, tmpDir+"/"+e.Name)
	}
}
