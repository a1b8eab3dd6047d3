// Package inspect answers questions about composefs images read into
// trees (image.Read): which files they hold and which objects of the
// object store they refer to. It is what composefs-info's ls, objects and
// missing-objects print, byte for byte as upstream's.
//
// Usage:
//
//	root, err := image.ReadFile("app.cfs", image.ReadOptions{})
//	if err != nil {
//		return err
//	}
//	inspect.WriteLs(os.Stdout, root)
//	var objs inspect.Objects
//	objs.Add(root)
//	missing := inspect.Missing(os.DirFS("/composefs/objects"), objs.List())
package inspect

import (
	"bufio"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/tree"
)

// WriteLs writes the listing "composefs-info ls" prints: one line for each
// entry below root (root itself excluded), depth first in name order: the
// path escaped as upstream does, then "/" and a tab for a directory, a tab
// and "-> TARGET" for a symlink, a tab and "@ OBJECT" for a regular file
// whose content is in the object store.
func WriteLs(w io.Writer, root *tree.Node) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf []byte
	err := root.Walk(func(p string, n *tree.Node) error {
		if n == root {
			return nil
		}
		buf = dump.AppendEscapedLs(buf[:0], []byte(p))
		switch n.Mode & tree.ModeType {
		case tree.ModeDir:
			buf = append(buf, "/\t"...)
		case tree.ModeSymlink:
			buf = append(buf, "\t-> "...)
			buf = dump.AppendEscaped(buf, []byte(n.Payload))
		case tree.ModeRegular:
			if n.Payload != "" {
				buf = append(buf, "\t@ "...)
				buf = dump.AppendEscaped(buf, []byte(n.Payload))
			}
		}
		buf = append(buf, '\n')
		_, err := bw.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Objects collects the object paths (the payloads the images record, as
// "XX/REST" or "/XX/REST") of the regular files of one or more images.
// The zero value is empty and ready to use.
type Objects struct {
	set map[string]struct{}
}

// Add adds the object paths of the regular files below root.
func (o *Objects) Add(root *tree.Node) {
	if o.set == nil {
		o.set = map[string]struct{}{}
	}
	root.Walk(func(_ string, n *tree.Node) error {
		if n.Mode&tree.ModeType == tree.ModeRegular && n.Payload != "" {
			o.set[n.Payload] = struct{}{}
		}
		return nil
	})
}

// List returns the object paths added, each once, sorted.
func (o *Objects) List() []string {
	list := make([]string, 0, len(o.set))
	for p := range o.set {
		list = append(list, p)
	}
	slices.Sort(list)
	return list
}

// Missing returns the object paths of list that the object store store
// lacks (leading slashes removed, symlinks followed, as upstream's
// fstatat does), in the order of list. A nil store lacks every object, as
// upstream's composefs-info does without --basedir. A path that is no
// valid fs.FS path (one with ".." in it, as only a hostile image has) is
// missing.
func Missing(store fs.FS, list []string) []string {
	var missing []string
	for _, p := range list {
		if store == nil {
			missing = append(missing, p)
			continue
		}
		if _, err := fs.Stat(store, strings.TrimLeft(p, "/")); err != nil {
			missing = append(missing, p)
		}
	}
	return missing
}
