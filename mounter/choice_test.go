package mounter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/fuse"
	"github.com/gocfs/gocfs/mount"
	"golang.org/x/sys/unix"
)

// TestChoice checks when Mount uses the kernel and when FUSE, with both
// ways of mounting replaced by stubs.
func TestChoice(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img.cfs")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	saved := []any{kernelMount, fuseMount, isRoot}
	defer func() {
		kernelMount = saved[0].(func(*os.File, string, mount.Options) error)
		fuseMount = saved[1].(func(*os.File, string, mount.Options) (*fuse.Server, error))
		isRoot = saved[2].(func() bool)
	}()
	feature := &mount.FeatureError{Feature: "overlayfs data-only layers", Since: "6.5", Err: unix.EINVAL}
	for _, c := range []struct {
		name      string
		root      bool
		kernelErr error
		set       func(*mount.Options)
		want      []string // the calls, in order: "kernel", "fuse", "start"
		wantErr   error
		notice    string
	}{
		{name: "kernel works", root: true, want: []string{"kernel"}},
		{name: "kernel lacks a feature", root: true, kernelErr: feature, want: []string{"kernel", "fuse"}, notice: "serving the image with FUSE instead"},
		{name: "no privilege", root: true, kernelErr: fmt.Errorf("x: %w: %w", mount.ErrNeedRoot, unix.EPERM), want: []string{"kernel", "fuse"}},
		{name: "other error", root: true, kernelErr: mount.ErrDigestMismatch, want: []string{"kernel"}, wantErr: mount.ErrDigestMismatch},
		{name: "refused image", root: true, kernelErr: mount.ErrInvalidImage, want: []string{"kernel"}, wantErr: mount.ErrInvalidImage},
		{name: "kernel forced", root: true, kernelErr: feature, set: func(o *mount.Options) { o.Method = mount.Kernel }, want: []string{"kernel"}, wantErr: feature},
		{name: "kernel-only option", root: true, kernelErr: feature, set: func(o *mount.Options) { o.UpperDir, o.WorkDir = "/u", "/w" }, want: []string{"kernel"}, wantErr: feature},
		{name: "FUSE forced", root: true, set: func(o *mount.Options) { o.Method = mount.FUSE }, want: []string{"fuse"}},
		{name: "not root", want: []string{"fuse"}, notice: "not root: serving the image with FUSE"},
		{name: "not root, kernel forced", set: func(o *mount.Options) { o.Method = mount.Kernel }, want: []string{"kernel"}},
		{name: "not root, kernel-only option", set: func(o *mount.Options) { o.IDMapPath = "/proc/1/ns/user" }, want: []string{"kernel"}},
		{name: "started elsewhere", set: func(o *mount.Options) {
			o.FUSE.Start = func(image, target string, o mount.Options) error { return nil }
		}, want: []string{"start"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls, notices []string
			isRoot = func() bool { return c.root }
			kernelMount = func(*os.File, string, mount.Options) error {
				calls = append(calls, "kernel")
				return c.kernelErr
			}
			fuseMount = func(_ *os.File, _ string, o mount.Options) (*fuse.Server, error) {
				calls = append(calls, "fuse")
				if o.Method != mount.FUSE {
					t.Errorf("FUSE mount with method %v", o.Method)
				}
				return nil, nil
			}
			opts := mount.Options{Basedirs: []string{"/s"}, Notice: func(m string) { notices = append(notices, m) }}
			if c.set != nil {
				c.set(&opts)
			}
			if start := opts.FUSE.Start; start != nil {
				opts.FUSE.Start = func(image, target string, o mount.Options) error {
					calls = append(calls, "start")
					if image != img || o.Method != mount.FUSE {
						t.Errorf("Start(%s, %s, method %v)", image, target, o.Method)
					}
					return start(image, target, o)
				}
			}
			m, err := Mount(img, "/mnt", opts)
			if strings.Join(calls, ",") != strings.Join(c.want, ",") {
				t.Errorf("calls %q, want %q", calls, c.want)
			}
			switch {
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("error %v, want %v", err, c.wantErr)
			case c.wantErr == nil && err != nil:
				t.Errorf("error %v", err)
			case err == nil && m.Method != map[string]mount.Method{"kernel": mount.Kernel, "fuse": mount.FUSE, "start": mount.FUSE}[c.want[len(c.want)-1]]:
				t.Errorf("mounted with %v", m.Method)
			}
			if c.notice != "" && (len(notices) != 1 || !strings.Contains(notices[0], c.notice)) {
				t.Errorf("notices %q, want one saying %q", notices, c.notice)
			}
		})
	}
}

// TestMountInvalidOptions checks that options wrong in themselves are
// refused before either way is tried.
func TestMountInvalidOptions(t *testing.T) {
	for _, o := range []mount.Options{
		{},
		{Basedirs: []string{"/s"}, Verity: 9},
		{Basedirs: []string{"/s"}, Method: 9},
		{Basedirs: []string{"/s"}, ExpectedDigest: "xyz"},
	} {
		if _, err := MountFile(os.Stdin, "/mnt", o); !errors.Is(err, mount.ErrInvalidOptions) {
			t.Errorf("%+v: %v, want ErrInvalidOptions", o, err)
		}
	}
}
