package dump

import (
	"bufio"
	"io"
	"strconv"

	"github.com/gocfs/gocfs/tree"
)

// Writer prints trees in composefs-dump(5) format, byte for byte as
// "composefs-info dump" does.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer printing to w. Call Flush when done.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// Flush writes any buffered output.
func (w *Writer) Flush() error { return w.w.Flush() }

// WriteTree prints root and everything below it, parents before children,
// children in name order, and flushes.
func (w *Writer) WriteTree(root *tree.Node) error {
	err := root.Walk(func(path string, n *tree.Node) error {
		w.buf = AppendEntry(w.buf[:0], n, path)
		_, err := w.w.Write(w.buf)
		return err
	})
	if err != nil {
		return err
	}
	return w.w.Flush()
}

// AppendEntry appends the dump line (with its newline) of node n at path.
// A hard link is printed with '@' before its mode, the path of the node it
// links to as payload, and that node's other fields.
func AppendEntry(b []byte, n *tree.Node, path string) []byte {
	t := n
	linkPath := ""
	if n.LinkTo != nil {
		t = n.LinkTo
		linkPath = t.Path()
	}
	b = appendEscaped(b, []byte(path), escapeStandard)
	b = append(b, ' ')
	b = strconv.AppendUint(b, t.Size, 10)
	b = append(b, ' ')
	if n.LinkTo != nil {
		b = append(b, '@')
	}
	b = strconv.AppendUint(b, uint64(t.Mode), 8)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.Nlink), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, t.Rdev, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t.MtimeSec, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.MtimeNsec), 10)
	b = append(b, ' ')
	switch {
	case n.LinkTo != nil:
		b = appendEscaped(b, []byte(linkPath), escapeLoneDash)
	case t.Payload != "":
		b = appendEscaped(b, []byte(t.Payload), escapeLoneDash)
	default:
		b = append(b, '-')
	}
	b = append(b, ' ')
	if t.Content != nil {
		// SIZE bytes of content, as upstream prints (they differ only for
		// a hostile image's whiteout that carries content).
		c := t.Content
		if uint64(len(c)) > t.Size {
			c = c[:t.Size]
		}
		b = appendEscaped(b, c, escapeLoneDash)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	if t.Digest != nil {
		for _, c := range t.Digest {
			b = append(b, hexDigits[c>>4], hexDigits[c&15])
		}
	} else {
		b = append(b, '-')
	}
	for _, x := range t.Xattrs {
		b = append(b, ' ')
		b = appendEscaped(b, []byte(x.Name), escapeEqual)
		b = append(b, '=')
		b = appendEscaped(b, x.Value, escapeEqual)
	}
	return append(b, '\n')
}
