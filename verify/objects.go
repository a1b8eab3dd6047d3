package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// errSymlink reports an object path that is, or passes through, a
// symbolic link.
var errSymlink = errors.New("symbolic link in the object's path")

// checkObjects checks the referenced objects in the store: each must be a
// regular file of the size the image gives, with the image's digest when
// it gives one. Objects are opened beneath Options.Basedir without
// following any symbolic link: the kernel (overlayfs looks objects up with
// no symlink following in a data-only layer) and the FUSE server refuse an
// object reached through one, so it is reported, never read through.
func (v *verifier) checkObjects() error {
	v.report.Stats.Objects = len(v.objects)
	if v.opts.Basedir == "" || len(v.objects) == 0 {
		for _, o := range v.objects {
			if o.digest.IsZero() {
				v.report.Stats.Unverified++
			}
		}
		return nil
	}
	st, err := openStore(v.opts.Basedir)
	if err != nil {
		return err
	}
	defer st.close()
	keys := make([]digest.Digest, 0, len(v.objects))
	for k := range v.objects {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b digest.Digest) int { return strings.Compare(a.Hex(), b.Hex()) })
	for _, k := range keys {
		v.report.Stats.Checked++
		v.checkObject(st, k, v.objects[k])
	}
	return nil
}

// checkObject checks object k of the store, used as o.
func (v *verifier) checkObject(st *objectStore, k digest.Digest, o *object) {
	rel := k.ObjectPath()
	f, err := st.open(rel)
	switch {
	case errors.Is(err, errSymlink):
		v.problem(o.path, nil, nil, "object", "object %s is, or passes through, a symbolic link: the kernel and FUSE refuse it", rel)
		return
	case err != nil:
		v.problem(o.path, nil, nil, "object", "object %s: %v", rel, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		v.problem(o.path, nil, nil, "object", "object %s: %v", rel, err)
		return
	}
	if !fi.Mode().IsRegular() {
		v.problem(o.path, nil, nil, "object", "object %s is not a regular file (%v)", rel, fi.Mode().Type())
		return
	}
	if uint64(fi.Size()) != o.size {
		v.problem(o.path, nil, nil, "object", "object %s has %d bytes, the image says %d", rel, fi.Size(), o.size)
		return
	}
	if o.digest.IsZero() {
		v.report.Stats.Unverified++
		return
	}
	d, _, err := fsverity.MeasureOrCompute(f, o.digest.Algorithm())
	if err != nil {
		v.problem(o.path, nil, nil, "object", "object %s: %v", rel, err)
		return
	}
	if !o.digest.Equal(o.digest.Algorithm(), d) {
		v.problem(o.path, nil, nil, "digest", "object %s has fs-verity digest %s, the image says %s", rel, fsverity.Hex(d), o.digest.Hex())
	}
}

// notDir is the error for a Basedir that is not a directory.
func notDir(dir string) error { return fmt.Errorf("%s: not a directory", dir) }
