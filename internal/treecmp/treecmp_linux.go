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
	wt, gt := ws.Mode&unix.S_IFMT, gs.Mode&unix.S_IFMT
	whiteout := c.opts.ComposefsWhiteouts && wt == unix.S_IFCHR && ws.Rdev == 0
	if whiteout {
		if gt != unix.S_IFREG || gs.Size != 0 {
			return c.diff(rel, "%s of %d bytes, want a whiteout (an empty regular file)", typeName(gt), gs.Size)
		}
		_, err1 := getxattr(gp, schema.Whiteout)
		_, err2 := getxattr(gp, schema.UserWhiteout)
		if err1 != nil && err2 != nil {
			return c.diff(rel, "whiteout without an overlay.whiteout xattr")
		}
		wt = gt
	}
	if wt != gt {
		return c.diff(rel, "type %s, want %s", typeName(gt), typeName(wt))
	}
	check := func(cond bool, format string, a ...any) error {
		if cond {
			return nil
		}
		return c.diff(rel, format, a...)
	}
	if err := check(ws.Mode&0o7777 == gs.Mode&0o7777, "mode %#o, want %#o", gs.Mode&0o7777, ws.Mode&0o7777); err != nil {
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
		if err := check(gs.Uid == wu && gs.Gid == wg, "owner %d:%d, want %d:%d", gs.Uid, gs.Gid, wu, wg); err != nil {
			return err
		}
	}
	if !c.opts.IgnoreMtime && !(wt == unix.S_IFDIR && c.opts.IgnoreDirMtime) {
		if err := check(ws.Mtim == gs.Mtim, "mtime %d.%09d, want %d.%09d", gs.Mtim.Sec, gs.Mtim.Nsec, ws.Mtim.Sec, ws.Mtim.Nsec); err != nil {
			return err
		}
	}
	if wt != unix.S_IFDIR {
		if err := check(ws.Size == gs.Size, "size %d, want %d", gs.Size, ws.Size); err != nil {
			return err
		}
	}
	if (wt == unix.S_IFCHR || wt == unix.S_IFBLK) && !whiteout {
		if err := check(ws.Rdev == gs.Rdev, "device %d:%d, want %d:%d",
			unix.Major(gs.Rdev), unix.Minor(gs.Rdev), unix.Major(ws.Rdev), unix.Minor(ws.Rdev)); err != nil {
			return err
		}
	}
	if c.opts.Hardlinks && wt != unix.S_IFDIR {
		if err := check(ws.Nlink == gs.Nlink, "%d links, want %d", gs.Nlink, ws.Nlink); err != nil {
			return err
		}
		if ws.Nlink > 1 {
			wfirst, ok := c.wantLinks[ws.Ino]
			if !ok {
				c.wantLinks[ws.Ino] = rel
				wfirst = rel
			}
			gfirst, ok := c.gotLinks[gs.Ino]
			if !ok {
				c.gotLinks[gs.Ino] = rel
				gfirst = rel
			}
			if err := check(wfirst == gfirst, "hard link of %s, want of %s", gfirst, wfirst); err != nil {
				return err
			}
		}
	}
	switch wt {
	case unix.S_IFLNK:
		wl, err := os.Readlink(wp)
		if err != nil {
			return err
		}
		gl, err := os.Readlink(gp)
		if err := check(err == nil && wl == gl, "symlink to %q (%v), want %q", gl, err, wl); err != nil {
			return err
		}
	case unix.S_IFREG:
		if !c.opts.IgnoreContent && ws.Size == gs.Size && !whiteout {
			wh, err := hashFile(wp)
			if err != nil {
				return err
			}
			gh, err := hashFile(gp)
			if err := check(err == nil && bytes.Equal(wh, gh), "content differs (%v)", err); err != nil {
				return err
			}
		}
	}
	if !c.opts.NoXattrs {
		wx, err := xattrs(wp, c.opts.Xattrs)
		if err != nil {
			return err
		}
		gx, err := xattrs(gp, c.opts.Xattrs)
		if err != nil {
			return c.diff(rel, "cannot read xattrs: %v", err)
		}
		for n, v := range wx {
			gv, ok := gx[n]
			if !ok {
				if err := c.diff(rel, "xattr %s missing", n); err != nil {
					return err
				}
				continue
			}
			if err := check(v == gv, "xattr %s = %q, want %q", n, gv, v); err != nil {
				return err
			}
		}
		for n := range gx {
			if _, ok := wx[n]; !ok && !(c.opts.ComposefsWhiteouts && whiteoutXattr[n]) {
				if err := c.diff(rel, "unexpected xattr %s", n); err != nil {
					return err
				}
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
