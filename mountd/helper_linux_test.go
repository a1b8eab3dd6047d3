package mountd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The helper: this test binary, re-executed as an unprivileged user in a
// user and mount namespace of its own (setpriv + unshare -U -m -r), asks
// the service for a mount, attaches it and reports what it sees.
const helperEnv = "GOCFS_MOUNTD_TEST_HELPER"

// helperRequest is what the helper is asked to do (as JSON in helperEnv).
type helperRequest struct {
	Socket     string
	Repository string // with Name: an image of a repository
	Name       string
	ImagePath  string // or an image file, opened by the helper
	Target     string
	IDMap      bool
}

// helperResult is what the helper reports on its standard output.
type helperResult struct {
	RefusedKind string            `json:",omitempty"`
	Reason      string            `json:",omitempty"`
	Error       string            `json:",omitempty"`
	MountInfo   string            `json:",omitempty"` // the target's mountinfo line
	RootUID     int               `json:",omitempty"`
	Files       map[string]string `json:",omitempty"` // manifest of the mount
	Remount     string            `json:",omitempty"` // what writing to the mount gave
}

func helperMain() int {
	var req helperRequest
	res := helperResult{}
	err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &req)
	if err == nil {
		err = helperRun(&req, &res)
	}
	if err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			res.RefusedKind, res.Reason = r.Kind.Error(), r.Reason
		} else {
			res.Error = err.Error()
		}
	}
	json.NewEncoder(os.Stdout).Encode(&res)
	return 0
}

func helperRun(req *helperRequest, res *helperResult) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, req.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	spec := MountSpec{Repository: req.Repository, Name: req.Name}
	if req.ImagePath != "" {
		f, err := os.Open(req.ImagePath)
		if err != nil {
			return err
		}
		defer f.Close()
		spec.Image = f
	}
	if req.IDMap {
		ns, err := os.Open("/proc/self/ns/user")
		if err != nil {
			return err
		}
		defer ns.Close()
		spec.UserNS = ns
	}
	mnt, _, err := c.Mount(ctx, spec)
	if err != nil {
		return err
	}
	defer mnt.Close()
	if err := Attach(mnt, req.Target); err != nil {
		return err
	}
	res.MountInfo = mountInfoLine(req.Target)
	var st syscall.Stat_t
	if err := syscall.Stat(req.Target, &st); err != nil {
		return err
	}
	res.RootUID = int(st.Uid)
	if f, err := os.Create(filepath.Join(req.Target, "new-file")); err == nil {
		f.Close()
		res.Remount = "created a file"
	} else {
		res.Remount = err.Error()
	}
	res.Files, err = manifest(req.Target, nil)
	return err
}

// mountInfoLine returns the line of /proc/self/mountinfo for target.
func mountInfoLine(target string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == target {
			return l
		}
	}
	return ""
}

// manifest describes every entry of the tree at dir: type, permissions,
// size and content digest (or symlink target). A file that can't be read
// is recorded with the error's errno when readable says it should not be
// (nil: every file must be readable).
func manifest(dir string, readable func(fs.FileMode) bool) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && errors.Is(err, fs.ErrPermission) {
				return filepath.SkipDir // listed, not entered
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		entry := fmt.Sprintf("%v", fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			entry += fmt.Sprintf(" %d %s", fi.Size(), fileDigest(p, fi.Mode(), readable))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entry += " -> " + t
		}
		out[rel] = entry
		if fi.IsDir() && readable != nil && !readable(fi.Mode()) && p != dir {
			return filepath.SkipDir // the caller can't enter it
		}
		return nil
	})
	return out, err
}

// fileDigest returns the SHA-256 of the file at p, or "unreadable" when
// readable says a caller can't read a file of mode m (and it can't).
func fileDigest(p string, m fs.FileMode, readable func(fs.FileMode) bool) string {
	if readable != nil && !readable(m) {
		return "unreadable"
	}
	f, err := os.Open(p)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "read error: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}
