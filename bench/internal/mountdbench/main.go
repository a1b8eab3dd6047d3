//go:build linux

// Command mountdbench compares reads and "ls -lR" walks through a mount
// made by gocfs mountd with the root kernel mount of the same image and
// with the FUSE server (the fallback of users without the service), and
// prints the ratios. bench/mountd.sh runs it (as root).
//
//	mountdbench -gen DIR             make the tree to build an image of
//	mountdbench IMAGE STORE SOURCE   measure
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gocfs/gocfs/fuse"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mountd"
	"golang.org/x/sys/unix"
)

const bigSize = 64 << 20

func main() {
	gen := flag.String("gen", "", "make the source tree in this directory and exit")
	runs := flag.Int("runs", 5, "timed runs of each measure; the best is kept")
	flag.Parse()
	if *gen != "" {
		if err := generate(*gen); err != nil {
			log.Fatal(err)
		}
		return
	}
	if flag.NArg() != 3 {
		log.Fatal("usage: mountdbench IMAGE STORE SOURCE")
	}
	if err := measure(flag.Arg(0), flag.Arg(1), *runs); err != nil {
		log.Fatal(err)
	}
}

// generate makes a 64 MiB file and 20 directories of 500 small files and
// symlinks under dir.
func generate(dir string) error {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, bigSize)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		return err
	}
	for d := range 20 {
		sub := filepath.Join(dir, "walk", fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		for i := range 500 {
			p := filepath.Join(sub, fmt.Sprintf("f%03d", i))
			var err error
			if i%4 == 3 {
				err = os.Symlink(fmt.Sprintf("f%03d", i-1), p)
			} else {
				err = os.WriteFile(p, fmt.Appendf(nil, "%s %d\n", p, rng.Uint64()), 0o644)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// mounted is one way of mounting the image, on a directory.
type mounted struct {
	name    string
	dir     string
	unmount func() error
}

func measure(img, store string, runs int) error {
	ms, err := mountAll(img, store)
	for _, m := range ms {
		defer func() {
			if err := m.unmount(); err != nil {
				log.Print(err)
			}
			os.Remove(m.dir)
		}()
	}
	if err != nil {
		return err
	}
	results := map[string]map[string]time.Duration{}
	for _, m := range ms {
		results[m.name] = map[string]time.Duration{}
		readBig(m.dir) // warm: the object into the page cache, the metadata read once
		walk(m.dir)
	}
	// Rounds alternate the mounts, each round starting with the next one,
	// so that load from elsewhere and the order hit all alike.
	for r := range runs {
		for i := range ms {
			m := ms[(r+i)%len(ms)]
			for what, f := range map[string]func(string) error{"read 64 MiB": readBig, "ls -lR": walk} {
				start := time.Now()
				if err := f(m.dir); err != nil {
					return fmt.Errorf("%s: %s: %w", m.name, what, err)
				}
				d := time.Since(start)
				if old, ok := results[m.name][what]; !ok || d < old {
					results[m.name][what] = d
				}
			}
		}
	}
	report(results)
	return nil
}

// mountAll mounts the image four ways: through a service (in this
// process, as root), with the kernel as root (the file, and a sealed copy
// of it as the service mounts), and with FUSE.
func mountAll(img, store string) ([]mounted, error) {
	var ms []mounted
	dir := func() string { d, _ := os.MkdirTemp("", "mountdbench-"); return d }

	svcMount, err := serviceMount(img, store)
	if err != nil {
		return ms, err
	}
	d := dir()
	if err := mountd.Attach(svcMount, d); err != nil {
		return ms, err
	}
	svcMount.Close()
	ms = append(ms, mounted{"mountd", d, func() error { return mount.Unmount(d) }})

	d2 := dir()
	if err := mount.Mount(img, d2, mount.Options{Basedirs: []string{store}}); err != nil {
		return ms, err
	}
	ms = append(ms, mounted{"kernel (root)", d2, func() error { return mount.Unmount(d2) }})

	// The root kernel mount of a sealed copy, as the service mounts it
	// (through a loop device): tells the loop device from the rest.
	src, err := os.Open(img)
	if err != nil {
		return ms, err
	}
	defer src.Close()
	cp, _, err := mount.SealedCopy(src, img, 0)
	if err != nil {
		return ms, err
	}
	defer cp.Close()
	d4 := dir()
	if err := mount.MountFile(cp, d4, mount.Options{Basedirs: []string{store}}); err != nil {
		return ms, err
	}
	ms = append(ms, mounted{"kernel (copy)", d4, func() error { return mount.Unmount(d4) }})

	d3 := dir()
	srv, err := fuse.Mount(img, d3, mount.Options{Basedirs: []string{store}, Notice: func(string) {}})
	if err != nil {
		return ms, err
	}
	ms = append(ms, mounted{"FUSE", d3, srv.Unmount})
	return ms, nil
}

// serviceMount runs a service on a temporary socket and asks it for a
// mount of img, passed as a descriptor.
func serviceMount(img, store string) (*os.File, error) {
	sockDir, err := os.MkdirTemp("", "mountdbench-sock-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)
	p, err := mountd.ParsePolicy(fmt.Appendf(nil, `{"stores":[{"name":"s","path":%q}]}`, store))
	if err != nil {
		return nil, err
	}
	svc, err := mountd.NewService(p, mountd.WithLog(func(string, ...any) {}))
	if err != nil {
		return nil, err
	}
	l, err := mountd.Listen(filepath.Join(sockDir, "s"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go svc.Serve(ctx, l)
	c, err := mountd.Dial(ctx, filepath.Join(sockDir, "s"))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start := time.Now()
	mnt, _, err := c.Mount(ctx, mountd.MountSpec{Image: f})
	if err == nil {
		fmt.Printf("mount through the service (admission + mount): %v\n", time.Since(start).Round(time.Millisecond))
	}
	return mnt, err
}

func readBig(dir string) error {
	f, err := os.Open(filepath.Join(dir, "big"))
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
	if err == nil && n != bigSize {
		err = fmt.Errorf("read %d bytes, want %d", n, bigSize)
	}
	return err
}

// walk does what "ls -lR" does: readdir, lstat and the SELinux and ACL
// xattrs of every entry.
func walk(dir string) error {
	buf := make([]byte, 256)
	var rec func(string) error
	rec = func(d string) error {
		h, err := os.Open(d)
		if err != nil {
			return err
		}
		names, err := h.Readdirnames(-1)
		h.Close()
		if err != nil {
			return err
		}
		for _, name := range names {
			p := d + "/" + name
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			unix.Lgetxattr(p, "security.selinux", buf)
			if st.Mode&unix.S_IFMT != unix.S_IFLNK {
				unix.Getxattr(p, "system.posix_acl_access", nil)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := rec(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return rec(dir)
}

func report(r map[string]map[string]time.Duration) {
	base := r["kernel (root)"]
	var names []string
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("%-14s %14s %8s %14s %8s\n", "mount", "read 64 MiB", "÷root", "ls -lR", "÷root")
	for _, n := range names {
		m := r[n]
		fmt.Printf("%-14s %14v %7.2fx %14v %7.2fx\n", n,
			m["read 64 MiB"].Round(time.Microsecond), float64(m["read 64 MiB"])/float64(base["read 64 MiB"]),
			m["ls -lR"].Round(time.Microsecond), float64(m["ls -lR"])/float64(base["ls -lR"]))
	}
}
