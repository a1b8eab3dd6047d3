package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// LayerInfo describes a stored layer, as cfsctl oci layer --json prints
// it (composefs-rs's LayerInfo, crates/composefs-oci/src/oci_image.rs).
type LayerInfo struct {
	// DiffID is the layer's diff ID ("sha256:…").
	DiffID string `json:"diffId"`
	// Verity is the fs-verity digest (hex) of its split stream.
	Verity string `json:"verity"`
	// Size is the size of the uncompressed tar archive.
	Size uint64 `json:"size"`
	// EntryCount is the number of tar members (extension headers and
	// PAX global headers not counted).
	EntryCount int `json:"entryCount"`
	// Splitstream says how the archive is split.
	Splitstream SplitstreamInfo `json:"splitstream"`
}

// SplitstreamInfo says how a layer's archive is stored: its files larger
// than 64 bytes as objects, everything else inline in the split stream.
type SplitstreamInfo struct {
	// ExternalObjects is the number of distinct objects, ExternalSize the
	// total size of the files stored as objects.
	ExternalObjects int    `json:"externalObjects"`
	ExternalSize    uint64 `json:"externalSize"`
	// InlineSize is the rest of the archive: headers, small files,
	// padding.
	InlineSize uint64 `json:"inlineSize"`
}

// layerMember is one tar member of a stored layer, as a layer dump shows
// it.
type layerMember struct {
	hdr     *tar.Header
	content []byte        // a regular file's content, if inline
	object  digest.Digest // a regular file's object, if not
}

// walkLayer rebuilds the layer with diff ID diffID from its split stream
// and calls fn for each of its members, in order; the archive's SHA-256 is
// checked at the end (an error after fn saw everything).
func walkLayer(r *repo.Repo, diffID string, fn func(m *layerMember) error) (digest.Digest, uint64, error) {
	sd, err := LayerStream(r, diffID)
	if err != nil {
		return digest.Digest{}, 0, err
	}
	d, err := digest.New(r.Algorithm(), sd)
	if err != nil {
		return digest.Digest{}, 0, err
	}
	pr, pw := io.Pipe()
	cw := &countWriter{w: pw}
	go func() { pw.CloseWithError(WriteLayer(r, diffID, cw)) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return d, 0, fmt.Errorf("oci: layer %s: %w", diffID, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		m, err := readMember(tr, hdr, r.Algorithm())
		if err != nil {
			return d, 0, layerError(hdr.Name, err)
		}
		if err := fn(m); err != nil {
			return d, 0, err
		}
	}
	// The end of the archive and what follows, then WriteLayer's check.
	if _, err := io.Copy(io.Discard, pr); err != nil {
		return d, 0, err
	}
	return d, cw.n, nil
}

// readMember reads a member's content: inline up to 64 bytes, else its
// object's digest, as composefs-rs splits a layer.
func readMember(tr *tar.Reader, hdr *tar.Header, alg fsverity.Algorithm) (*layerMember, error) {
	m := &layerMember{hdr: hdr}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		if hdr.Size > tree.RecommendedInlineMax {
			raw, err := fsverity.Digest(tr, alg)
			if err != nil {
				return nil, err
			}
			m.object = digest.MustNew(alg, raw)
			return m, nil
		}
		var err error
		m.content, err = io.ReadAll(tr)
		return m, err
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return m, nil
	}
	return nil, fmt.Errorf("unsupported tar member type %q", hdr.Typeflag)
}

type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// Layer returns what cfsctl oci layer --json says of the stored layer with
// diff ID diffID ("sha256:HEX" or HEX).
func Layer(r *repo.Repo, diffID string) (*LayerInfo, error) {
	info := &LayerInfo{DiffID: "sha256:" + strings.TrimPrefix(diffID, "sha256:")}
	objects := make(map[digest.Digest]bool)
	d, size, err := walkLayer(r, diffID, func(m *layerMember) error {
		info.EntryCount++
		if !m.object.IsZero() {
			objects[m.object] = true
			info.Splitstream.ExternalSize += uint64(m.hdr.Size)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	info.Verity, info.Size = d.Hex(), size
	info.Splitstream.ExternalObjects = len(objects)
	info.Splitstream.InlineSize = size - info.Splitstream.ExternalSize
	return info, nil
}

// WriteLayerDump writes the members of the stored layer with diff ID
// diffID to w, one composefs dump line each, as cfsctl oci layer
// --dumpfile does (composefs-rs's TarEntry Display and write_entry,
// crates/composefs-oci/src/tar.rs and crates/composefs/src/dumpfile.rs):
// absolute paths ("-" for the root), the header's mode with the type's
// bits, link count 1, directories of size 0, a hard link as
// "PATH 0 @120000 - - - - 0.0 TARGET - -", xattrs from SCHILY.xattr
// records in name order.
func WriteLayerDump(r *repo.Repo, diffID string, w io.Writer) error {
	var line []byte
	_, _, err := walkLayer(r, diffID, func(m *layerMember) error {
		line = appendMemberLine(line[:0], m)
		_, err := w.Write(line)
		return err
	})
	return err
}

// appendMemberLine appends m's dump line.
func appendMemberLine(b []byte, m *layerMember) []byte {
	h := m.hdr
	b = appendField(b, []byte(absolutePath(h.Name)))
	if h.Typeflag == tar.TypeLink {
		b = append(b, " 0 @120000 - - - - 0.0 "...)
		b = appendField(b, []byte(absolutePath(h.Linkname)))
		return append(b, " - -\n"...)
	}
	var typ uint32
	var size uint64
	var rdev uint64
	var payload, content []byte
	id := "-"
	switch h.Typeflag {
	case tar.TypeDir:
		typ = tree.ModeDir
	case tar.TypeSymlink:
		typ, size, payload = tree.ModeSymlink, uint64(len(h.Linkname)), []byte(h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		typ = tree.ModeChar
		if h.Typeflag == tar.TypeBlock {
			typ = tree.ModeBlock
		}
		rdev = unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	case tar.TypeFifo:
		typ = tree.ModeFIFO
	default:
		typ, size = tree.ModeRegular, uint64(h.Size)
		if !m.object.IsZero() {
			payload, id = []byte(m.object.ObjectPath()), m.object.Hex()
		} else {
			content = m.content
		}
	}
	b = fmt.Appendf(b, " %d %o 1 %d %d %d %d.%d ", size, uint32(h.Mode)|typ, h.Uid, h.Gid, rdev, h.ModTime.Unix(), h.ModTime.Nanosecond())
	b = appendField(b, payload)
	b = append(b, ' ')
	b = appendField(b, content)
	b = append(b, ' ')
	b = append(b, id...)
	xs, _ := tarXattrs(h)
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	for _, x := range xs {
		b = append(b, ' ')
		b = appendXattrField(b, []byte(x.Name))
		b = append(b, '=')
		b = appendXattrField(b, x.Value)
	}
	return append(b, '\n')
}

// absolutePath is composefs-rs's make_absolute_path: "/" + the name
// without leading or trailing slashes, "" for the root.
func absolutePath(name string) string {
	p := "/" + strings.TrimPrefix(name, "/")
	p = strings.TrimRight(p, "/")
	return p
}

// appendField appends a dump field: "-" when empty, a lone "-" escaped.
func appendField(b, s []byte) []byte {
	switch {
	case len(s) == 0:
		return append(b, '-')
	case len(s) == 1 && s[0] == '-':
		return append(b, `\x2d`...)
	}
	return dump.AppendEscaped(b, s)
}

// appendXattrField appends an xattr name or value: escaped, '=' too, and
// an empty one empty.
func appendXattrField(b, s []byte) []byte {
	start := len(b)
	b = dump.AppendEscaped(b, s)
	if bytes.IndexByte(b[start:], '=') < 0 {
		return b
	}
	esc := bytes.ReplaceAll(b[start:], []byte("="), []byte(`\x3d`))
	return append(b[:start], esc...)
}
