package snapshotter

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// rootAttrs are the attributes of the root directory below a layer: the
// new upper directory gets them, and the layer carries a member for its
// root only when it changed its mode or owner.
type rootAttrs struct {
	mode     uint32
	uid, gid uint32
	mtime    time.Time
}

// implicitRoot is what an image's root is when no layer has a member for
// it (docs/oci.md), and what the upper directory of a snapshot without a
// parent starts as.
var implicitRoot = rootAttrs{mode: tree.ModeDir | 0o755}

// importUpper stores the overlayfs upper directory upper as an OCI layer
// in r (its files as objects, the layer as a split stream) and names its
// stream streams/refs/REF. lower is what the layer's root was made from:
// the root gets a member of its own only when the layer changed it. It
// returns the layer's diff ID.
//
// The directory is read twice: once for the diff ID, which the import
// checks the archive against, and once for the import. A file that
// changed in between fails the import; nothing is named then.
func importUpper(ctx context.Context, r *repo.Repo, upper string, lower rootAttrs, ref string) (string, error) {
	l, err := readUpper(ctx, upper, lower)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if err := l.write(h); err != nil {
		return "", err
	}
	diffID := fmt.Sprintf("sha256:%x", h.Sum(nil))
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(l.write(pw)) }()
	_, err = oci.ImportLayer(ctx, r, diffID, pr, ref)
	pr.CloseWithError(errors.New("import ended"))
	if err != nil {
		return "", fmt.Errorf("snapshotter: importing %s: %w", upper, err)
	}
	return diffID, nil
}

// upperLayer is an upper directory read as a layer: its tree (stat data,
// xattrs, hard links; no content) and the directory to read content from.
type upperLayer struct {
	dir      string
	root     *tree.Node
	emitRoot bool
}

// readUpper reads the tree of the upper directory dir, through no
// symbolic link.
func readUpper(ctx context.Context, dir string, lower rootAttrs) (*upperLayer, error) {
	root, err := scan.DirContext(ctx, dir, scan.Options{NoDigests: true, PreserveHardlinks: true})
	if err != nil {
		return nil, fmt.Errorf("snapshotter: reading %s: %w", dir, err)
	}
	changed := root.Mode != lower.mode || root.UID != lower.uid || root.GID != lower.gid
	_, opaque := root.GetXattr(schema.Opaque)
	return &upperLayer{dir: dir, root: root, emitRoot: changed || opaque || hasPlainXattrs(root)}, nil
}

// hasPlainXattrs reports whether n has xattrs other than overlayfs's own.
func hasPlainXattrs(n *tree.Node) bool {
	for _, x := range n.Xattrs {
		if !strings.HasPrefix(x.Name, schema.OverlayPrefix) {
			return true
		}
	}
	return false
}

// write writes the layer as a tar archive (PAX, so that times keep their
// nanoseconds and xattrs their values) to w: overlayfs's whiteouts (a
// character device 0/0, or a file marked trusted.overlay.whiteout) become
// OCI whiteouts, an opaque directory (trusted.overlay.opaque "y") gets an
// opaque whiteout member, and overlayfs's other private xattrs are left
// out. Entries come in the tree's order, a directory before its members.
func (l *upperLayer) write(w io.Writer) (retErr error) {
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	err = l.root.Walk(func(p string, n *tree.Node) error {
		if p == "/" {
			if !l.emitRoot {
				return nil
			}
			return writeMember(tw, root, "./", n)
		}
		return writeMember(tw, root, strings.TrimPrefix(p, "/"), n)
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("snapshotter: writing the layer of %s: %w", l.dir, err)
	}
	return nil
}

// writeMember writes the members of the node n at the relative path rel.
func writeMember(tw *tar.Writer, root *os.Root, rel string, n *tree.Node) error {
	t, err := n.Target()
	if err != nil {
		return fmt.Errorf("snapshotter: %s: %w", schema.Shorten(rel), err)
	}
	if isWhiteout(t) {
		// overlayfs makes whiteouts hard links of one inode when it can:
		// each name is a whiteout of its own.
		return writeWhiteout(tw, path.Dir(rel), oci.WhiteoutPrefix+n.Name)
	}
	if t != n {
		return writeHeader(tw, rel, &tar.Header{Typeflag: tar.TypeLink, Linkname: strings.TrimPrefix(t.Path(), "/")})
	}
	hdr, err := header(n)
	if err != nil {
		return fmt.Errorf("snapshotter: %s: %w", schema.Shorten(rel), err)
	}
	if hdr == nil {
		return nil // a socket: no tar member can hold one
	}
	name := rel
	if n.IsDir() && rel != "./" {
		name += "/"
	}
	if err := writeHeader(tw, name, hdr); err != nil {
		return err
	}
	if n.IsRegular() && n.Size > 0 {
		if err := copyContent(tw, root, rel, n); err != nil {
			return err
		}
	}
	if v, ok := n.GetXattr(schema.Opaque); ok && n.IsDir() && string(v) == "y" {
		return writeWhiteout(tw, rel, oci.OpaqueWhiteout)
	}
	return nil
}

// isWhiteout reports whether n is an overlayfs whiteout.
func isWhiteout(n *tree.Node) bool {
	if n.IsWhiteout() {
		return true
	}
	_, ok := n.GetXattr(schema.Whiteout)
	return ok && n.IsRegular() && n.Size == 0
}

// writeWhiteout writes the empty whiteout member name in the directory
// dir ("." or "./" for the root).
func writeWhiteout(tw *tar.Writer, dir, name string) error {
	if dir != "." && dir != "./" {
		name = dir + "/" + name
	}
	return writeHeader(tw, name, &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0)})
}

// header makes the tar header of a node that is not a hard link or a
// whiteout; nil for a socket.
func header(n *tree.Node) (*tar.Header, error) {
	hdr := &tar.Header{
		Mode:    int64(n.Mode & 0o7777),
		Uid:     int(n.UID),
		Gid:     int(n.GID),
		ModTime: time.Unix(n.MtimeSec, int64(n.MtimeNsec)),
	}
	switch n.Type() {
	case tree.ModeDir:
		hdr.Typeflag = tar.TypeDir
	case tree.ModeRegular:
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(n.Size)
	case tree.ModeSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, n.Payload
	case tree.ModeChar, tree.ModeBlock:
		hdr.Typeflag = tar.TypeChar
		if n.Type() == tree.ModeBlock {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(n.Rdev)), int64(unix.Minor(n.Rdev))
	case tree.ModeFIFO:
		hdr.Typeflag = tar.TypeFifo
	case tree.ModeSocket:
		return nil, nil
	default:
		return nil, fmt.Errorf("file type %#o", n.Type())
	}
	for _, x := range n.Xattrs {
		if strings.HasPrefix(x.Name, schema.OverlayPrefix) {
			continue // overlayfs's own: whiteouts, opaque, copy-up origins
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	return hdr, nil
}

// writeHeader writes hdr as the member name, in the PAX format.
func writeHeader(tw *tar.Writer, name string, hdr *tar.Header) error {
	hdr.Name = name
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("snapshotter: %s: %w", schema.Shorten(name), err)
	}
	return nil
}

// copyContent copies the content of the regular file rel (beneath root)
// to tw: exactly the size the tree says, or an error.
func copyContent(tw *tar.Writer, root *os.Root, rel string, n *tree.Node) error {
	f, err := root.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if !fi.Mode().IsRegular() || uint64(fi.Size()) != n.Size {
		return fmt.Errorf("snapshotter: %s changed while it was read (now %v, %d bytes)", schema.Shorten(rel), fi.Mode().Type(), fi.Size())
	}
	if _, err := io.CopyN(tw, f, int64(n.Size)); err != nil {
		return fmt.Errorf("snapshotter: reading %s: %w", schema.Shorten(rel), err)
	}
	return nil
}
