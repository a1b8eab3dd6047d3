//go:build linux

package treecmp

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/schema"
)

// Diff compares the trees at want and got and returns their
// differences, one line each, naming the path relative to the roots. It
// compares: which entries exist, file type, permission bits (with setuid,
// setgid, sticky), owners, sizes (not of directories), mtimes to the
// nanosecond, device numbers, symlink targets, file content, xattrs, and
// with opts.Hardlinks the hard links. An error means a tree could not be
// read (not a difference).
func Diff(want, got string, opts Options) ([]string, error) {
	c := &comparer{opts: opts, wantLinks: map[uint64]string{}, gotLinks: map[uint64]string{}}
	if c.opts.Xattrs == nil {
		c.opts.Xattrs = DefaultXattrFilter
	}
	if c.opts.MaxDiffs == 0 {
		c.opts.MaxDiffs = 50
	}
	err := c.walk(want, got, "")
	if errors.Is(err, errEnough) {
		err = nil
		c.diffs = append(c.diffs, fmt.Sprintf("(stopped after %d differences)", len(c.diffs)))
	}
	return c.diffs, err
}

var errEnough = errors.New("too many differences")

type comparer struct {
	opts                Options
	diffs               []string
	wantLinks, gotLinks map[uint64]string // inode -> first path seen
}

func (c *comparer) diff(rel, format string, a ...any) error {
	if rel == "" {
		rel = "."
	}
	c.diffs = append(c.diffs, rel+": "+fmt.Sprintf(format, a...))
	if len(c.diffs) >= c.opts.MaxDiffs {
		return errEnough
	}
	return nil
}

func (c *comparer) walk(wantRoot, gotRoot, rel string) error {
	wp, gp := filepath.Join(wantRoot, rel), filepath.Join(gotRoot, rel)
	var ws, gs unix.Stat_t
	if err := unix.Lstat(wp, &ws); err != nil {
		return fmt.Errorf("lstat %s: %w", wp, err)
	}
	if err := unix.Lstat(gp, &gs); err != nil {
		return c.diff(rel, "cannot stat: %v", err)
	}
	if rel != "" || !c.opts.IgnoreRoot {
		if err := c.entry(wp, gp, rel, &ws, &gs); err != nil {
			return err
		}
	}
	if ws.Mode&unix.S_IFMT != unix.S_IFDIR || gs.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	wn, err := names(wp)
	if err != nil {
		return err
	}
	gn, err := names(gp)
	if err != nil {
		return c.diff(rel, "cannot list: %v", err)
	}
	gset := map[string]bool{}
	for _, n := range gn {
		gset[n] = true
	}
	for _, n := range wn {
		if !gset[n] {
			if err := c.diff(filepath.Join(rel, n), "missing"); err != nil {
				return err
			}
			continue
		}
		delete(gset, n)
		if err := c.walk(wantRoot, gotRoot, filepath.Join(rel, n)); err != nil {
			return err
		}
	}
	extra := make([]string, 0, len(gset))
	for n := range gset {
		extra = append(extra, n)
	}
	sort.Strings(extra)
	for _, n := range extra {
		if err := c.diff(filepath.Join(rel, n), "unexpected entry"); err != nil {
			return err
		}
	}
	return nil
}

func names(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	n, err := d.Readdirnames(-1)
	sort.Strings(n)
	return n, err
}

func (c *comparer) entry(wp, gp, rel string, ws, gs *unix.Stat_t) error {
	p := &pair{wp: wp, gp: gp, rel: rel, ws: ws, gs: gs}
	if same, err := c.checkType(p); !same {
		return err // nothing else compares between different types
	}
	for _, check := range []func(*pair) error{c.checkStat, c.checkLinks, c.checkData, c.checkXattrs} {
		if err := check(p); err != nil {
			return err
		}
	}
	return nil
}

// pair is one entry of the two trees: the wanted one and the one got.
type pair struct {
	wp, gp, rel string
	ws, gs      *unix.Stat_t
	wt          uint32 // the wanted type (a whiteout's: the type got)
	whiteout    bool   // the wanted entry is a whiteout
}

// check reports a difference unless cond holds.
func (c *comparer) check(p *pair, cond bool, format string, a ...any) error {
	if cond {
		return nil
	}
	return c.diff(p.rel, format, a...)
}

// checkType compares file types, a composefs whiteout standing for an
// empty regular file with an overlay whiteout xattr. It reports whether
// they match.
func (c *comparer) checkType(p *pair) (bool, error) {
	wt, gt := p.ws.Mode&unix.S_IFMT, p.gs.Mode&unix.S_IFMT
	p.whiteout = c.opts.ComposefsWhiteouts && wt == unix.S_IFCHR && p.ws.Rdev == 0
	if p.whiteout {
		if gt != unix.S_IFREG || p.gs.Size != 0 {
			return false, c.diff(p.rel, "%s of %d bytes, want a whiteout (an empty regular file)", typeName(gt), p.gs.Size)
		}
		_, err1 := getxattr(p.gp, schema.Whiteout)
		_, err2 := getxattr(p.gp, schema.UserWhiteout)
		if err1 != nil && err2 != nil {
			return false, c.diff(p.rel, "whiteout without an overlay.whiteout xattr")
		}
		wt = gt
	}
	p.wt = wt
	if wt != gt {
		return false, c.diff(p.rel, "type %s, want %s", typeName(gt), typeName(wt))
	}
	return true, nil
}

// checkStat compares mode, owner, mtime, size and device number.
func (c *comparer) checkStat(p *pair) error {
	ws, gs := p.ws, p.gs
	if err := c.check(p, ws.Mode&0o7777 == gs.Mode&0o7777, "mode %#o, want %#o", gs.Mode&0o7777, ws.Mode&0o7777); err != nil {
		return err
	}
	if !c.opts.IgnoreOwners {
		wu, wg := ws.Uid, ws.Gid
		if c.opts.MapUID != nil {
			wu = c.opts.MapUID(wu)
		}
		if c.opts.MapGID != nil {
			wg = c.opts.MapGID(wg)
		}
		if err := c.check(p, gs.Uid == wu && gs.Gid == wg, "owner %d:%d, want %d:%d", gs.Uid, gs.Gid, wu, wg); err != nil {
			return err
		}
	}
	if !c.opts.IgnoreMtime && !(p.wt == unix.S_IFDIR && c.opts.IgnoreDirMtime) {
		if err := c.check(p, ws.Mtim == gs.Mtim, "mtime %d.%09d, want %d.%09d", gs.Mtim.Sec, gs.Mtim.Nsec, ws.Mtim.Sec, ws.Mtim.Nsec); err != nil {
			return err
		}
	}
	if p.wt != unix.S_IFDIR {
		if err := c.check(p, ws.Size == gs.Size, "size %d, want %d", gs.Size, ws.Size); err != nil {
			return err
		}
	}
	if (p.wt == unix.S_IFCHR || p.wt == unix.S_IFBLK) && !p.whiteout {
		return c.check(p, ws.Rdev == gs.Rdev, "device %d:%d, want %d:%d",
			unix.Major(gs.Rdev), unix.Minor(gs.Rdev), unix.Major(ws.Rdev), unix.Minor(ws.Rdev))
	}
	return nil
}

// checkLinks compares link counts and which names share an inode.
func (c *comparer) checkLinks(p *pair) error {
	if !c.opts.Hardlinks || p.wt == unix.S_IFDIR {
		return nil
	}
	if err := c.check(p, p.ws.Nlink == p.gs.Nlink, "%d links, want %d", p.gs.Nlink, p.ws.Nlink); err != nil {
		return err
	}
	if p.ws.Nlink <= 1 {
		return nil
	}
	wfirst, ok := c.wantLinks[p.ws.Ino]
	if !ok {
		c.wantLinks[p.ws.Ino] = p.rel
		wfirst = p.rel
	}
	gfirst, ok := c.gotLinks[p.gs.Ino]
	if !ok {
		c.gotLinks[p.gs.Ino] = p.rel
		gfirst = p.rel
	}
	return c.check(p, wfirst == gfirst, "hard link of %s, want of %s", gfirst, wfirst)
}

// checkData compares symlink targets and file contents.
func (c *comparer) checkData(p *pair) error {
	switch p.wt {
	case unix.S_IFLNK:
		wl, err := os.Readlink(p.wp)
		if err != nil {
			return err
		}
		gl, err := os.Readlink(p.gp)
		return c.check(p, err == nil && wl == gl, "symlink to %q (%v), want %q", gl, err, wl)
	case unix.S_IFREG:
		if c.opts.IgnoreContent || p.ws.Size != p.gs.Size || p.whiteout {
			return nil
		}
		wh, err := hashFile(p.wp)
		if err != nil {
			return err
		}
		gh, err := hashFile(p.gp)
		return c.check(p, err == nil && bytes.Equal(wh, gh), "content differs (%v)", err)
	}
	return nil
}

// checkXattrs compares extended attributes (those the options select).
func (c *comparer) checkXattrs(p *pair) error {
	if c.opts.NoXattrs {
		return nil
	}
	wx, err := xattrs(p.wp, c.opts.Xattrs)
	if err != nil {
		return err
	}
	gx, err := xattrs(p.gp, c.opts.Xattrs)
	if err != nil {
		return c.diff(p.rel, "cannot read xattrs: %v", err)
	}
	for n, v := range wx {
		gv, ok := gx[n]
		if !ok {
			if err := c.diff(p.rel, "xattr %s missing", n); err != nil {
				return err
			}
			continue
		}
		if err := c.check(p, v == gv, "xattr %s = %q, want %q", n, gv, v); err != nil {
			return err
		}
	}
	for n := range gx {
		if _, ok := wx[n]; !ok && !(c.opts.ComposefsWhiteouts && whiteoutXattr[n]) {
			if err := c.diff(p.rel, "unexpected xattr %s", n); err != nil {
				return err
			}
		}
	}
	return nil
}

// whiteoutXattr are the xattrs a composefs mount adds for whiteouts, that
// the default filter does not leave out already.
var whiteoutXattr = map[string]bool{
	schema.UserWhiteout:  true,
	schema.UserWhiteouts: true,
	schema.UserOpaque:    true,
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %#o", t)
}

func hashFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// xattrs returns the xattrs of p (not following a symlink) that keep
// selects.
func xattrs(p string, keep func(string) bool) (map[string]string, error) {
	buf := make([]byte, 4096)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		break
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	res := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || !keep(name) {
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			return nil, err
		}
		res[name] = string(v)
	}
	return res, nil
}

func getxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf)+65536)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		return buf[:n], nil
	}
}
