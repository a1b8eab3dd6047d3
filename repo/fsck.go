package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
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
	rel, path string
	size      int64
	bad       string // what is wrong with it, "" if nothing
}

// Fsck checks the repository: every object's content against its name
// (measured by the kernel where fs-verity is enabled, else computed), that
// every image link points at its object, that every image reads as a
// composefs image and every object it refers to is there and intact, and
// that every reference points at an image. The split streams a registered
// StreamKeeper owns (with a Refs hook) are checked like images: every
// object they refer to must be there and intact. Each corrupt or missing
// object is reported with every image that uses it (and their references)
// and every stream, and each such image or stream is reported damaged. The
// repository lock is held shared.
func (r *Repo) Fsck(ctx context.Context) (*FsckResult, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &FsckResult{Algorithm: AlgorithmName(r.alg), Problems: []Problem{}, Leftovers: []string{}}
	objects, err := r.listObjects(res)
	if err != nil {
		return nil, err
	}
	if err := r.checkObjects(ctx, objects, res); err != nil {
		return nil, err
	}
	byRel := make(map[string]*objectState, len(objects))
	for _, o := range objects {
		byRel[o.rel] = o
	}
	// Imports may run meanwhile (they hold the lock shared too): an
	// object linked after the listing is checked when an image refers to
	// it. (Images are linked only after their objects.)
	var h *fsverity.Hasher
	var buf []byte
	lookup := func(rel string) *objectState {
		if o, ok := byRel[rel]; ok {
			return o
		}
		path := filepath.Join(r.ObjectsDir(), rel)
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			byRel[rel] = nil
			return nil
		}
		if h == nil {
			h, buf = fsverity.New(r.alg), make([]byte, 256<<10)
		}
		o := &objectState{rel: rel, path: path, size: fi.Size()}
		n, kernel := r.checkObject(o, h, buf, nil)
		res.Objects++
		res.Bytes += n
		if kernel {
			res.KernelVerified++
		}
		objects = append(objects, o)
		byRel[rel] = o
		return o
	}

	refs, badRefs, err := r.readRefs()
	if err != nil {
		return nil, err
	}
	res.Refs = len(refs)
	refsOf := make(map[string][]string)
	for _, ref := range refs {
		refsOf[ref.Image] = append(refsOf[ref.Image], ref.Name)
	}
	for _, b := range badRefs {
		res.Problems = append(res.Problems, Problem{Kind: KindRefInvalid, Path: b.path, Detail: b.detail})
	}

	images, badImages, err := r.readImageLinks()
	if err != nil {
		return nil, err
	}
	for _, b := range badImages {
		res.Problems = append(res.Problems, Problem{Kind: KindBadLink, Path: b.path, Detail: b.detail})
	}
	haveImage := make(map[string]bool)
	for _, im := range images {
		haveImage[im] = true
	}
	for _, ref := range refs {
		if !haveImage[ref.Image] {
			res.Problems = append(res.Problems, Problem{Kind: KindRefDangling, Path: refsDir + "/" + ref.Name, Image: ref.Image, Refs: []string{ref.Name},
				Detail: fmt.Sprintf("reference %s points at image %s, which is not in the repository", ref.Name, ref.Image)})
		}
	}

	// Which images use which bad (corrupt or missing) objects.
	usedBy := make(map[string][]ImageUse) // object rel -> uses
	p := r.startProgress("checking images", int64(len(images)), false)
	for _, im := range images {
		if err := ctx.Err(); err != nil {
			p.finish()
			return nil, err
		}
		p.add(1)
		res.Images++
		d, _ := r.ParseDigest(im)
		rel := ObjectRel(d)
		path := imagesDir + "/" + im
		if o := lookup(rel); o == nil || o.bad != "" {
			detail := "its object " + objectsDir + "/" + rel + " is missing"
			if o != nil {
				detail = "its object " + objectsDir + "/" + rel + " is bad: " + o.bad
			}
			res.Problems = append(res.Problems, Problem{Kind: KindImageCorrupt, Path: path, Image: im, Object: fsverity.Hex(d), Refs: refsOf[im], Detail: detail})
			continue
		}
		root, err := r.readImage(d)
		if err != nil {
			res.Problems = append(res.Problems, Problem{Kind: KindImageInvalid, Path: path, Image: im, Refs: refsOf[im], Detail: err.Error()})
			continue
		}
		uses, problems := r.objectsOf(root)
		if len(problems) > 0 {
			detail := problems[0]
			if len(problems) > 1 {
				detail += fmt.Sprintf(" (and %d more)", len(problems)-1)
			}
			res.Problems = append(res.Problems, Problem{Kind: KindImageInvalid, Path: path, Image: im, Refs: refsOf[im], Detail: detail})
		}
		var bad []string
		nMissing := 0
		for _, u := range uses {
			o := lookup(u.rel)
			if o != nil && o.bad == "" {
				continue
			}
			if o == nil {
				nMissing++
			}
			bad = append(bad, fsverity.Hex(u.digest))
			usedBy[u.rel] = append(usedBy[u.rel], ImageUse{Image: im, Refs: refsOf[im], Files: u.files})
		}
		if len(bad) > 0 {
			res.Problems = append(res.Problems, Problem{Kind: KindImageDamaged, Path: path, Image: im, Refs: refsOf[im], Objects: bad,
				Detail: fmt.Sprintf("refers to %d missing and %d corrupt object(s)", nMissing, len(bad)-nMissing)})
		}
	}
	p.finish()

	streamUse, err := r.checkKeptStreams(ctx, lookup, res)
	if err != nil {
		return nil, err
	}

	for _, o := range objects {
		if o.bad == "" {
			continue
		}
		d, _ := r.ParseObjectRel(o.rel)
		kind := KindObjectCorrupt
		switch {
		case strings.HasPrefix(o.bad, "unreadable"):
			kind = KindObjectUnreadable
		case strings.HasPrefix(o.bad, "no fs-verity"):
			kind = KindObjectNoVerity
		}
		res.Problems = append(res.Problems, Problem{Kind: kind, Path: objectsDir + "/" + o.rel, Object: fsverity.Hex(d), Detail: o.bad,
			UsedBy: usedBy[o.rel], Streams: streamUse[o.rel]})
		delete(usedBy, o.rel)
		delete(streamUse, o.rel)
	}
	for rel := range streamUse {
		if _, ok := usedBy[rel]; !ok {
			usedBy[rel] = nil
		}
	}
	for rel, uses := range usedBy { // left: the missing ones
		d, _ := r.ParseObjectRel(rel)
		streams := streamUse[rel]
		detail := fmt.Sprintf("referred to by %d image(s), not in the repository", len(uses))
		if len(streams) > 0 {
			detail = fmt.Sprintf("referred to by %d image(s) and %d split stream(s), not in the repository", len(uses), len(streams))
		}
		res.Problems = append(res.Problems, Problem{Kind: KindObjectMissing, Path: objectsDir + "/" + rel, Object: fsverity.Hex(d),
			Detail: detail, UsedBy: uses, Streams: streams})
	}
	r.checkStreams(res)
	r.findLeftovers(res)
	sort.SliceStable(res.Problems, func(i, j int) bool {
		a, b := res.Problems[i], res.Problems[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Path < b.Path
	})
	sort.Strings(res.Leftovers)
	return res, nil
}

// listObjects lists the objects, reporting what else is in the store.
func (r *Repo) listObjects(res *FsckResult) ([]*objectState, error) {
	top := r.ObjectsDir()
	fanout, err := os.ReadDir(top)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	n := 2*r.alg.Size() - 2
	var objects []*objectState
	for _, fd := range fanout {
		if !fd.IsDir() || !isHex(fd.Name(), 2) {
			res.Problems = append(res.Problems, Problem{Kind: KindUnexpected, Path: objectsDir + "/" + fd.Name(), Detail: "not an object directory (XX)"})
			continue
		}
		ents, err := os.ReadDir(filepath.Join(top, fd.Name()))
		if err != nil {
			return nil, fmt.Errorf("repo: %w", err)
		}
		for _, e := range ents {
			rel := fd.Name() + "/" + e.Name()
			switch {
			case isObjectTmp(e.Name()):
				res.Leftovers = append(res.Leftovers, objectsDir+"/"+rel)
			case !isHex(e.Name(), n):
				res.Problems = append(res.Problems, Problem{Kind: KindUnexpected, Path: objectsDir + "/" + rel, Detail: "not named by a " + r.alg.String() + " digest"})
			case !e.Type().IsRegular():
				res.Problems = append(res.Problems, Problem{Kind: KindUnexpected, Path: objectsDir + "/" + rel, Detail: "not a regular file"})
			default:
				o := &objectState{rel: rel, path: filepath.Join(top, fd.Name(), e.Name())}
				if fi, err := e.Info(); err == nil {
					o.size = fi.Size()
				}
				objects = append(objects, o)
			}
		}
	}
	return objects, nil
}

// checkObjects checks every object's digest, in parallel.
func (r *Repo) checkObjects(ctx context.Context, objects []*objectState, res *FsckResult) error {
	var total int64
	for _, o := range objects {
		total += o.size
	}
	p := r.startProgress("checking objects", total, true)
	defer p.finish()
	threads := r.opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
	)
	for range min(threads, max(len(objects), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			h := fsverity.New(r.alg)
			for {
				mu.Lock()
				if next >= len(objects) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				o := objects[next]
				next++
				mu.Unlock()
				n, kernel := r.checkObject(o, h, buf, p)
				mu.Lock()
				res.Objects++
				res.Bytes += n
				if kernel {
					res.KernelVerified++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// checkObject checks one object, setting o.bad. It returns the bytes read
// and whether the kernel measured the digest.
func (r *Repo) checkObject(o *objectState, h *fsverity.Hasher, buf []byte, p *progressor) (int64, bool) {
	want, _ := r.ParseObjectRel(o.rel)
	f, err := os.OpenFile(o.path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		o.bad = "unreadable: " + err.Error()
		return 0, false
	}
	defer f.Close()
	alg, got, err := fsverity.Measure(f)
	if err == nil {
		p.add(o.size)
		if alg != r.alg || !bytes.Equal(got, want) {
			o.bad = fmt.Sprintf("the kernel measured fs-verity digest %s:%s", alg, fsverity.Hex(got))
		}
		return o.size, true
	}
	h.Reset()
	n, rerr := io.CopyBuffer(progressWriter{h, p}, onlyReader{f}, buf)
	switch {
	case rerr != nil:
		o.bad = "unreadable: " + rerr.Error()
	case !bytes.Equal(h.Sum(nil), want):
		o.bad = fmt.Sprintf("content has digest %s", fsverity.Hex(h.Sum(nil)))
	case r.secure && errors.Is(err, fsverity.ErrNotEnabled):
		o.bad = "no fs-verity, which the repository requires"
	}
	return n, false
}

// progressWriter counts what goes through it.
type progressWriter struct {
	w io.Writer
	p *progressor
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(int64(n))
	return n, err
}

// checkKeptStreams checks the split streams that a registered keeper with
// a Refs hook owns: their own objects and those they refer to (looked up,
// and checked if not yet, through lookup). It returns, for each bad
// (corrupt or missing) object, the streams that refer to it.
func (r *Repo) checkKeptStreams(ctx context.Context, lookup func(rel string) *objectState, res *FsckResult) (map[string][]string, error) {
	names, err := r.streamLinks()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	streamUse := make(map[string][]string) // object rel -> streams/NAME
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, ok := keeperOf(name)
		if !ok || k.Refs == nil {
			continue
		}
		path := streamsDir + "/" + name
		target, err := os.Readlink(filepath.Join(r.dir, streamsDir, name))
		if err != nil {
			continue // checkStreams reports it
		}
		rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
		d, err := r.ParseObjectRel(rel)
		if !ok || err != nil {
			res.Problems = append(res.Problems, Problem{Kind: KindBadLink, Path: path, Detail: fmt.Sprintf("points at %q, not at an object", target)})
			continue
		}
		rel = ObjectRel(d)
		o := lookup(rel)
		if o == nil {
			continue // checkStreams reports it
		}
		if o.bad != "" {
			streamUse[rel] = append(streamUse[rel], path)
			res.Problems = append(res.Problems, Problem{Kind: KindStreamDamaged, Path: path, Object: fsverity.Hex(d),
				Detail: "its object " + objectsDir + "/" + rel + " is bad: " + o.bad})
			continue
		}
		refs, err := k.Refs(r, name, d)
		if err != nil {
			res.Problems = append(res.Problems, Problem{Kind: KindStreamInvalid, Path: path, Object: fsverity.Hex(d), Detail: err.Error()})
			continue
		}
		if i := slices.IndexFunc(refs, func(ref []byte) bool { return len(ref) != r.alg.Size() }); i >= 0 {
			res.Problems = append(res.Problems, Problem{Kind: KindStreamInvalid, Path: path, Object: fsverity.Hex(d),
				Detail: fmt.Sprintf("refers to a %d-byte digest in a %s repository", len(refs[i]), r.alg)})
			continue
		}
		var bad []string
		nMissing := 0
		seen := make(map[string]bool, len(refs))
		for _, ref := range refs {
			orel := ObjectRel(ref)
			if seen[orel] {
				continue
			}
			seen[orel] = true
			o := lookup(orel)
			if o != nil && o.bad == "" {
				continue
			}
			if o == nil {
				nMissing++
			}
			bad = append(bad, fsverity.Hex(ref))
			streamUse[orel] = append(streamUse[orel], path)
		}
		if len(bad) > 0 {
			res.Problems = append(res.Problems, Problem{Kind: KindStreamDamaged, Path: path, Object: fsverity.Hex(d), Objects: bad,
				Detail: fmt.Sprintf("refers to %d missing and %d corrupt object(s)", nMissing, len(bad)-nMissing)})
		}
	}
	return streamUse, nil
}

// checkStreams checks that stream links resolve (the streams of
// registered keepers are checked further by checkKeptStreams).
func (r *Repo) checkStreams(res *FsckResult) {
	top := filepath.Join(r.dir, streamsDir)
	filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(r.dir, path)
		if d.Type()&fs.ModeSymlink == 0 {
			res.Problems = append(res.Problems, Problem{Kind: KindBadLink, Path: filepath.ToSlash(rel), Detail: "not a symlink"})
		} else if _, err := os.Stat(path); err != nil {
			res.Problems = append(res.Problems, Problem{Kind: KindBadLink, Path: filepath.ToSlash(rel), Detail: "does not resolve: " + err.Error()})
		}
		return nil
	})
}

// findLeftovers lists tmp/.
func (r *Repo) findLeftovers(res *FsckResult) {
	ents, _ := os.ReadDir(filepath.Join(r.dir, tmpDir))
	for _, e := range ents {
		res.Leftovers = append(res.Leftovers, tmpDir+"/"+e.Name())
	}
}
