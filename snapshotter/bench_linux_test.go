package snapshotter

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gocfs/gocfs/internal/testutil"
)

// TestBenchDiskUsage is the benchmark of docs/containerd.md (run by
// bench/containerd.sh, skipped unless GOCFS_BENCH_CONTAINERD is set):
// three images whose one layer each holds the same large base (as
// images rebuilt from one base do: same files, a different layer) and a
// few files of their own are pulled by one containerd through its
// overlayfs snapshotter and through gocfs's; it prints the disk each
// uses beside the size of the images' distinct file contents.
func TestBenchDiskUsage(t *testing.T) {
	if os.Getenv("GOCFS_BENCH_CONTAINERD") == "" {
		t.Skip("a benchmark: set GOCFS_BENCH_CONTAINERD=1 (bench/containerd.sh)")
	}
	needRoot(t)
	tools := needTools(t, map[string]string{"containerd": "containerd", "ctr": "containerd", "runc": "runc"})
	work := t.TempDir()
	reg := testutil.StartRegistry(t).Addr
	baseFiles, ownFiles := benchFiles(400, 160<<10), benchFiles(3*20, 100<<10)
	distinct := make(map[[32]byte]int64)
	var refs []string
	for i := range 3 {
		m := []member{dir("app/"), dir("base/")}
		for j, body := range baseFiles {
			m = append(m, member{name: fmt.Sprintf("base/f%03d", j), typ: '0', body: body, mode: 0o644, mtimeSec: int64(1700000000 + i)})
		}
		for j, body := range ownFiles[i*20 : (i+1)*20] {
			m = append(m, file(fmt.Sprintf("app/own%02d", j), body))
		}
		for _, x := range m {
			if x.typ == '0' {
				distinct[sha256.Sum256([]byte(x.body))] = int64(len(x.body))
			}
		}
		ref := fmt.Sprintf("%s/bench/app%d:latest", reg, i)
		pushImage(t, ref, layerTar(t, m))
		refs = append(refs, ref)
	}
	var contents int64
	for _, n := range distinct {
		contents += n
	}
	root, sock := filepath.Join(work, "sn"), filepath.Join(work, "gocfs.sock")
	t.Cleanup(func() { unmountAll(t, root) })
	startSnapshotter(t, work, root, sock)
	cdir := filepath.Join(work, "containerd")
	c := startContainerd(t, tools["containerd"], tools["ctr"], cdir, sock)
	pull := func(snapshotter string) time.Duration {
		t0 := time.Now()
		for _, ref := range refs {
			c.must("image", "pull", "--plain-http", "--snapshotter", snapshotter, ref)
		}
		return time.Since(t0)
	}
	tOverlay, tGocfs := pull("overlayfs"), pull("gocfs")
	overlay := diskUsage(t, filepath.Join(cdir, "root", "io.containerd.snapshotter.v1.overlayfs"))
	gocfs := diskUsage(t, root)
	fmt.Printf("3 images, one layer each: a %.1f MiB base (%d files, the same in each) and %.1f MiB of their own\n", mib(totalSize(baseFiles)), len(baseFiles), mib(totalSize(ownFiles))/3)
	fmt.Printf("distinct file contents:     %7.1f MiB\n", mib(contents))
	fmt.Printf("overlayfs snapshotter disk: %7.1f MiB (%.2fx the contents), pulls %v\n", mib(overlay), float64(overlay)/float64(contents), tOverlay.Round(time.Millisecond))
	fmt.Printf("gocfs snapshotter disk:     %7.1f MiB (%.2fx the contents), pulls %v\n", mib(gocfs), float64(gocfs)/float64(contents), tGocfs.Round(time.Millisecond))
	if float64(gocfs) > 1.1*float64(contents) {
		t.Errorf("the gocfs snapshotter uses %.2fx the distinct contents, more than 1.1x", float64(gocfs)/float64(contents))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func totalSize(files []string) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f))
	}
	return n
}

// benchFiles returns n files of random content of about size bytes.
func benchFiles(n, size int) []string {
	rnd := rand.New(rand.NewSource(int64(n)))
	out := make([]string, n)
	for i := range out {
		b := make([]byte, size/2+rnd.Intn(size))
		rnd.Read(b)
		out[i] = string(b)
	}
	return out
}

// diskUsage is du -x: the blocks of everything under dir on dir's file
// system, each inode once.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var top syscall.Stat_t
	if err := syscall.Lstat(dir, &top); err != nil {
		t.Fatal(err)
	}
	seen := make(map[uint64]bool)
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != top.Dev {
			return fs.SkipDir // a mount (the chain mounts)
		}
		if !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
