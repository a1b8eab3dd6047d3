// Package dump reads and writes the composefs-dump(5) text format: one line
// per file, with space-separated, backslash-escaped fields
//
//	PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTR…]
//
// where MODE is octal (prefixed with '@' for a hard link, whose PAYLOAD is
// the path of the file it links to), MTIME is SEC.NSEC, "-" stands for an
// absent PAYLOAD, CONTENT or DIGEST, and each XATTR is NAME=VALUE.
//
// # Reading
//
// [Parse] builds a [tree.Node] from a whole dump. It accepts what upstream
// mkcomposefs accepts and refuses what it refuses; [Options.Strict] adds the
// checks upstream makes when CFS_PARSE_STRICT is set (a trailing newline,
// symlink sizes, no device numbers on non-devices). Every error names the
// line and the reason. [Reader] gives the same lines one at a time.
//
// # Writing
//
// [Writer] prints a tree exactly as "composefs-info dump" does.
package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gocfs/gocfs/schema"
	"github.com/gocfs/gocfs/tree"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("dump: invalid dump file")

// Options control parsing.
type Options struct {
	// Strict adds upstream's CFS_PARSE_STRICT checks.
	Strict bool
	// FileName, if set, is named in errors.
	FileName string
}

// maxLine bounds one line (xattrs included); upstream refuses more than
// 64 KiB of xattrs, so a line is never legitimately much longer.
const maxLine = 1 << 20

// Entry is one parsed line.
type Entry struct {
	Line       int        // 1-based line number
	Path       string     // unescaped path
	Node       *tree.Node // the inode (for a hard link: only Mode is set)
	Hardlink   bool       // MODE had the '@' prefix
	LinkTarget string     // hard link target path ("" if absent)
	HasTarget  bool       // the hard link's PAYLOAD was not "-"
}

// Reader reads dump lines one at a time.
type Reader struct {
	r      *bufio.Reader
	opts   Options
	line   int
	err    error
	buffer []byte
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader, opts Options) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), opts: opts}
}

// ParseError is a parse error with its position.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

func (r *Reader) errorf(format string, args ...any) error {
	for i, a := range args { // hostile input can be long: quote it shortened
		switch v := a.(type) {
		case string:
			args[i] = schema.Shorten(v)
		case []byte:
			args[i] = []byte(schema.Shorten(string(v)))
		}
	}
	return &ParseError{File: r.opts.FileName, Line: r.line, Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)}
}

// Next returns the next line's entry, or io.EOF after the last one. After an
// error, Next keeps returning it.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	line, err := r.readLine()
	if err != nil {
		r.err = err
		return nil, err
	}
	e, err := r.parseLine(line)
	if err != nil {
		r.err = err
		return nil, err
	}
	return e, nil
}

func (r *Reader) readLine() ([]byte, error) {
	r.buffer = r.buffer[:0]
	for {
		chunk, err := r.r.ReadSlice('\n')
		r.buffer = append(r.buffer, chunk...)
		if len(r.buffer) > maxLine {
			r.line++
			return nil, r.errorf("line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buffer) == 0 {
				return nil, io.EOF
			}
			r.line++
			if r.opts.Strict {
				return nil, r.errorf("missing trailing newline")
			}
			return r.buffer, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dump: reading %s: %w", r.name(), err)
		}
		r.line++
		return r.buffer[:len(r.buffer)-1], nil
	}
}

func (r *Reader) name() string {
	if r.opts.FileName != "" {
		return r.opts.FileName
	}
	return "input"
}

// splitField cuts the next space-separated field; past the end it returns
// empty fields, as upstream does.
func splitField(s []byte) (field, rest []byte) {
	if i := bytes.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

func parseUint(field []byte, base int, what string) (uint64, error) {
	if len(field) == 0 {
		return 0, fmt.Errorf("empty %s", what)
	}
	v, err := strconv.ParseUint(string(field), base, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q", what, field)
	}
	return v, nil
}

// optional unescapes a field that may be "-".
func optional(field []byte) ([]byte, bool, error) {
	if len(field) == 1 && field[0] == '-' {
		return nil, false, nil
	}
	v, err := unescape(field)
	return v, true, err
}

func (r *Reader) parseLine(line []byte) (*Entry, error) {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		return nil, r.errorf("NUL character at column %d", i+1)
	}
	var f fields
	rest := line
	for i := range f {
		f[i], rest = splitField(rest)
	}
	e, err := r.parseHead(&f)
	if err != nil || e.Hardlink {
		return e, err
	}
	size, err := r.parseStat(e, &f)
	if err != nil {
		return nil, err
	}
	if err := r.parseData(e, &f, size); err != nil {
		return nil, err
	}
	if err := r.parseXattrs(e, rest); err != nil {
		return nil, err
	}
	return e, nil
}

// fields are a line's eleven fixed fields: PATH SIZE MODE NLINK UID GID
// RDEV MTIME PAYLOAD CONTENT DIGEST (xattrs follow).
type fields [11][]byte

// The fields' indexes.
const (
	fPath = iota
	fSize
	fMode
	fNlink
	fUID
	fGID
	fRdev
	fMtime
	fPayload
	fContent
	fDigest
)

// parseHead parses the path and the mode, and for a hard link its target:
// all a hard link line has.
func (r *Reader) parseHead(f *fields) (*Entry, error) {
	path, err := unescape(f[fPath])
	if err != nil {
		return nil, r.errorf("path: %v", err)
	}
	if len(path) == 0 {
		return nil, r.errorf("empty path")
	}
	if bytes.IndexByte(path, 0) >= 0 {
		return nil, r.errorf("NUL in path %q", path)
	}
	e := &Entry{Line: r.line, Path: string(path)}
	modeField := f[fMode]
	if len(modeField) > 0 && modeField[0] == '@' {
		e.Hardlink = true
		modeField = modeField[1:]
	}
	mode, err := parseUint(modeField, 8, "mode")
	if err != nil {
		return nil, r.errorf("%s: %v", e.Path, err)
	}
	if mode > 0xffffffff || !tree.ValidMode(uint32(mode)) {
		return nil, r.errorf("%s: invalid mode %o", e.Path, mode)
	}
	e.Node = tree.New(uint32(mode))
	if e.Hardlink {
		if e.Node.IsDir() {
			return nil, r.errorf("%s: directories can't be hard linked", e.Path)
		}
		target, ok, err := optional(f[fPayload])
		if err != nil {
			return nil, r.errorf("%s: hard link target: %v", e.Path, err)
		}
		e.LinkTarget, e.HasTarget = string(target), ok
	}
	return e, nil
}

// parseStat parses the numeric fields into e.Node and returns SIZE.
func (r *Reader) parseStat(e *Entry, f *fields) (size uint64, err error) {
	var nums [5]uint64
	for i, what := range [5]string{"size", "nlink", "uid", "gid", "rdev"} {
		idx := [5]int{fSize, fNlink, fUID, fGID, fRdev}[i]
		if nums[i], err = parseUint(f[idx], 10, what); err != nil {
			return 0, r.errorf("%s: %v", e.Path, err)
		}
	}
	size, nlink, uid, gid, rdev := nums[0], nums[1], nums[2], nums[3], nums[4]
	if nlink > 0xffffffff || uid > 0xffffffff || gid > 0xffffffff {
		return 0, r.errorf("%s: nlink, uid or gid out of range", e.Path)
	}
	msec, mnsec, err := r.parseMtime(e, f[fMtime])
	if err != nil {
		return 0, err
	}
	n := e.Node
	if n.Type() != tree.ModeSymlink {
		n.Size = size
	}
	n.Nlink = uint32(nlink)
	n.UID, n.GID = uint32(uid), uint32(gid)
	if typ := n.Type(); typ == tree.ModeChar || typ == tree.ModeBlock {
		n.Rdev = rdev
	} else if r.opts.Strict && rdev != 0 {
		return 0, r.errorf("%s: non-zero device number on a non-device", e.Path)
	}
	n.MtimeSec, n.MtimeNsec = msec, mnsec
	return size, nil
}

// parseMtime parses SEC.NSEC.
func (r *Reader) parseMtime(e *Entry, field []byte) (int64, uint32, error) {
	sec, nsec, ok := bytes.Cut(field, []byte{'.'})
	if !ok {
		return 0, 0, r.errorf("%s: invalid mtime %q (want SEC.NSEC)", e.Path, field)
	}
	msec, err := parseUint(sec, 10, "mtime")
	if err != nil {
		return 0, 0, r.errorf("%s: %v", e.Path, err)
	}
	mnsec, err := parseUint(nsec, 10, "mtime nanoseconds")
	if err != nil {
		return 0, 0, r.errorf("%s: %v", e.Path, err)
	}
	if mnsec > 0xffffffff {
		return 0, 0, r.errorf("%s: mtime nanoseconds out of range", e.Path)
	}
	return int64(msec), uint32(mnsec), nil
}

// parseData parses PAYLOAD, CONTENT and DIGEST into e.Node.
func (r *Reader) parseData(e *Entry, f *fields, size uint64) error {
	payload, hasPayload, err := optional(f[fPayload])
	if err != nil {
		return r.errorf("%s: payload: %v", e.Path, err)
	}
	content, hasContent, err := optional(f[fContent])
	if err != nil {
		return r.errorf("%s: content: %v", e.Path, err)
	}
	if hasContent && uint64(len(content)) != size {
		return r.errorf("%s: content is %d bytes but size is %d", e.Path, len(content), size)
	}
	digest, hasDigest, err := optional(f[fDigest])
	if err != nil {
		return r.errorf("%s: digest: %v", e.Path, err)
	}
	if e.Node.Type() == tree.ModeSymlink {
		err = r.setSymlink(e, payload, hasPayload, content, size)
	} else {
		err = r.setFileData(e, payload, hasPayload, content, hasContent)
	}
	if err != nil {
		return err
	}
	// An empty DIGEST field (a line cut short) gives upstream an undefined
	// digest; take it as none.
	if hasDigest && len(digest) > 0 {
		d, err := parseDigest(digest)
		if err != nil {
			return r.errorf("%s: %v", e.Path, err)
		}
		e.Node.Digest = d
	}
	return nil
}

// setSymlink sets a symlink's target from PAYLOAD.
func (r *Reader) setSymlink(e *Entry, payload []byte, hasPayload bool, content []byte, size uint64) error {
	if !hasPayload || len(payload) == 0 {
		return r.errorf("%s: symlink without a target", e.Path)
	}
	if bytes.IndexByte(payload, 0) >= 0 {
		return r.errorf("%s: NUL in symlink target", e.Path)
	}
	if err := e.Node.SetSymlink(string(payload)); err != nil {
		return r.errorf("%s: symlink target: %v", e.Path, err)
	}
	if r.opts.Strict {
		if size != uint64(len(payload)) {
			return r.errorf("%s: symlink size %d does not match its target's length %d", e.Path, size, len(payload))
		}
		if len(content) > 0 {
			return r.errorf("%s: symlink cannot have content", e.Path)
		}
	}
	return nil
}

// setFileData sets any other inode's payload and inline content.
func (r *Reader) setFileData(e *Entry, payload []byte, hasPayload bool, content []byte, hasContent bool) error {
	n := e.Node
	if hasPayload {
		if len(payload) > tree.MaxPathLen {
			return r.errorf("%s: payload longer than %d bytes", e.Path, tree.MaxPathLen)
		}
		if bytes.IndexByte(payload, 0) >= 0 {
			return r.errorf("%s: NUL in payload", e.Path)
		}
		n.Payload = string(payload)
	}
	if hasContent && len(content) > 0 {
		if len(content) > tree.MaxInlineContent {
			return r.errorf("%s: inline content of %d bytes exceeds the maximum of %d", e.Path, len(content), tree.MaxInlineContent)
		}
		n.Content = append([]byte(nil), content...)
	}
	return nil
}

// parseXattrs parses the KEY=VALUE fields after DIGEST.
func (r *Reader) parseXattrs(e *Entry, rest []byte) error {
	if len(rest) > 0xffff {
		return r.errorf("%s: too many xattrs", e.Path)
	}
	for len(rest) > 0 {
		var x []byte
		x, rest = splitField(rest)
		name, value, ok := bytes.Cut(x, []byte{'='})
		if !ok {
			return r.errorf("%s: missing = in xattr %q", e.Path, x)
		}
		k, err := unescape(name)
		if err != nil {
			return r.errorf("%s: xattr name: %v", e.Path, err)
		}
		if len(k) == 0 || bytes.IndexByte(k, 0) >= 0 {
			return r.errorf("%s: invalid xattr name %q", e.Path, k)
		}
		v, err := unescape(value)
		if err != nil {
			return r.errorf("%s: xattr %s: %v", e.Path, k, err)
		}
		if err := e.Node.SetXattr(string(k), v); err != nil {
			return r.errorf("%s: can't set xattr %q: %v", e.Path, k, err)
		}
	}
	return nil
}

func parseDigest(s []byte) ([]byte, error) {
	// A sha256 fs-verity digest, as upstream writes, or a sha512 one (an
	// extension of gocfs's, for SHA-512 object stores).
	if len(s) != 64 && len(s) != 128 {
		return nil, fmt.Errorf("invalid digest %q: want 64 (sha256) or 128 (sha512) hex digits", s)
	}
	d := make([]byte, len(s)/2)
	for i := range d {
		h, l := unhex(s[2*i]), unhex(s[2*i+1])
		if h < 0 || l < 0 {
			return nil, fmt.Errorf("invalid digest %q: not hex", s)
		}
		d[i] = byte(h<<4 | l)
	}
	return d, nil
}

type fixup struct {
	node   *tree.Node
	target string
	has    bool
	line   int
}

// Parse reads a whole dump and returns its root.
func Parse(r io.Reader, opts Options) (*tree.Node, error) {
	rd := NewReader(r, opts)
	var root *tree.Node
	var fixups []fixup
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rd.line = e.Line
		if e.Path == "/" {
			if !e.Node.IsDir() || e.Hardlink {
				return nil, rd.errorf("the root must be a directory")
			}
			if root != nil {
				return nil, rd.errorf("more than one root")
			}
			root = e.Node
			continue
		}
		if root == nil {
			return nil, rd.errorf("%s: the root (\"/\") must come first", e.Path)
		}
		dir, name := splitPath(e.Path)
		parent := root.LookupPath(dir)
		if parent == nil {
			return nil, rd.errorf("%s: parent directory missing", e.Path)
		}
		if !parent.IsDir() {
			return nil, rd.errorf("%s: parent is not a directory", e.Path)
		}
		if name == "." || name == ".." || name == "" {
			return nil, rd.errorf("%s: invalid file name %q", e.Path, name)
		}
		if err := parent.AddChild(name, e.Node); err != nil {
			if errors.Is(err, tree.ErrExists) {
				return nil, rd.errorf("%s: path already exists", e.Path)
			}
			return nil, rd.errorf("%s: %v", e.Path, err)
		}
		if e.Hardlink {
			fixups = append(fixups, fixup{e.Node, e.LinkTarget, e.HasTarget, e.Line})
		}
	}
	if root == nil {
		return nil, &ParseError{File: opts.FileName, Line: rd.line, Err: fmt.Errorf("%w: no files in dump", ErrSyntax)}
	}
	// Upstream resolves hard links last to first; the order matters only
	// for which error is reported.
	for i := len(fixups) - 1; i >= 0; i-- {
		fx := fixups[i]
		rd.line = fx.line
		if !fx.has {
			return nil, rd.errorf("%s: hard link without a target path", fx.node.Path())
		}
		target := root.LookupPath(fx.target)
		if target == nil {
			return nil, rd.errorf("%s: no target at %s for hard link", fx.node.Path(), fx.target)
		}
		old := target.Nlink
		if err := fx.node.MakeHardlink(target); err != nil {
			return nil, rd.errorf("%s: hard link to %s: %v", fx.node.Path(), fx.target, err)
		}
		// The dump's NLINK of the target is kept as written.
		target.Nlink = old
	}
	return root, nil
}

// splitPath splits an absolute dump path into its parent and last
// component, tolerating repeated slashes as upstream does.
func splitPath(p string) (dir, name string) {
	p = strings.TrimLeft(p, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}
