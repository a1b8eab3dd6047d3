package oci

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// The benchmarks of this file compare the gocfs command with other tools,
// run as commands, from a cold page cache: run them with bench/pull.sh
// (as root, on a machine where nothing else runs).

// benchBinaries builds gocfs and crane (the go-containerregistry version
// go.mod names) into a temporary directory.
func benchBinaries(b *testing.B) (gocfs, crane string) {
	b.Helper()
	dir := b.TempDir()
	gocfs, crane = filepath.Join(dir, "gocfs"), filepath.Join(dir, "crane")
	for _, c := range [][]string{
		{"go", "build", "-o", gocfs, "github.com/gocfs/gocfs/cmd/gocfs"},
		{"go", "build", "-o", crane, "github.com/google/go-containerregistry/cmd/crane"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return gocfs, crane
}

// writeBenchLayer writes a gzip-compressed layer of about mb MB to path:
// like /usr, most files small and compressible, a few large binaries.
func writeBenchLayer(b *testing.B, path string, seed uint64, mb int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	var total int
	for i := 0; total < mb<<20; i++ {
		var data []byte
		name := fmt.Sprintf("usr/share/s%d/d%02d/f%06d", seed, i%97, i)
		if i%40 == 0 {
			data = randBytes(seed<<32+uint64(i), 1<<20+(i*7919)%(2<<20))
			name = fmt.Sprintf("usr/lib/s%d/lib%06d.so", seed, i)
		} else {
			data = textBytes(seed<<32+uint64(i), 200+(i*104729)%60000)
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: t0, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
		total += len(data)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// dropCaches writes the dirty pages and empties the page cache.
func dropCaches(b *testing.B) {
	b.Helper()
	exec.Command("sync").Run()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.Skipf("dropping the page cache: %v (run as root)", err)
	}
}

// timeCmd runs a shell command from a cold page cache and returns how
// long it took.
func timeCmd(b *testing.B, script string) time.Duration {
	b.Helper()
	dropCaches(b)
	start := time.Now()
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
	return time.Since(start)
}

// BenchmarkPullVsCrane times `gocfs oci pull` of a generated 2-layer
// image (GOCFS_BENCH_PULL_MB MB uncompressed, default 1000) from a
// loopback docker-registry into a new repository, against `crane export
// IMAGE - | tar -x` into an empty directory, each from a cold page cache,
// alternately (GOCFS_BENCH_RUNS times, default 3), and prints the medians
// and their ratio (goal: at most 0.67).
//
// Every run writes into a directory of its own, and all are removed only
// at the end: ext4 without a journal skips inodes freed in the last
// minute or so when it allocates one (recently_deleted), so a side that
// runs right after a deletion of the other's output pays for thousands
// of skipped inodes, which no user pulling into a repository pays.
func BenchmarkPullVsCrane(b *testing.B) {
	requireRoot(b)
	mb, _ := strconv.Atoi(os.Getenv("GOCFS_BENCH_PULL_MB"))
	if mb <= 0 {
		mb = 1000
	}
	runs, _ := strconv.Atoi(os.Getenv("GOCFS_BENCH_RUNS"))
	if runs <= 0 {
		runs = 3
	}
	gocfs, crane := benchBinaries(b)
	ref := pushBenchImage(b, mb)
	work := b.TempDir()
	var tc, tg []time.Duration
	b.ResetTimer()
	for run := range runs {
		out := filepath.Join(work, fmt.Sprintf("crane%d", run))
		os.MkdirAll(out, 0o755)
		tc = append(tc, timeCmd(b, fmt.Sprintf("%s export --insecure %s - | tar -x -C %s", crane, ref, out)))
		rp := filepath.Join(work, fmt.Sprintf("repo%d", run))
		if o, err := exec.Command(gocfs, "--repo", rp, "init").CombinedOutput(); err != nil {
			b.Fatalf("gocfs init: %v\n%s", err, o)
		}
		tg = append(tg, timeCmd(b, fmt.Sprintf("%s --repo %s oci pull %s img", gocfs, rp, ref)))
		b.Logf("run %d: crane export | tar -x %.2f s, gocfs oci pull %.2f s", run, tc[run].Seconds(), tg[run].Seconds())
	}
	b.StopTimer()
	c, g := median(tc), median(tg)
	fmt.Printf("pull of a %d MB 2-layer gzip image, cold cache, median of %d: crane export | tar -x %.2f s, gocfs oci pull %.2f s, ratio %.2f (goal <= 0.67)\n",
		mb, runs, c.Seconds(), g.Seconds(), g.Seconds()/c.Seconds())
	b.ReportMetric(g.Seconds()/c.Seconds(), "pull/crane")
}

// pushBenchImage pushes the benchmark's 2-layer image of mb MB to the
// registry GOCFS_BENCH_REGISTRY (HOST:PORT, as test/registry/run.sh
// serves it), unless it has it already, else to a registry of its own,
// and returns its reference.
func pushBenchImage(b *testing.B, mb int) string {
	b.Helper()
	addr := os.Getenv("GOCFS_BENCH_REGISTRY")
	var reg *registry
	if addr == "" {
		reg = startRegistry(b)
		addr = reg.addr
	}
	ref := fmt.Sprintf("%s/gocfs/pullbench:%dmb", addr, mb)
	if reg == nil {
		if _, err := remote.Head(must(name.ParseReference(ref))); err == nil {
			return ref
		}
	}
	work := b.TempDir()
	img := empty.Image
	for i := range 2 {
		p := filepath.Join(work, fmt.Sprintf("layer%d.tar.gz", i))
		writeBenchLayer(b, p, uint64(i+1), mb/2)
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	if err := remote.Write(must(name.ParseReference(ref)), img); err != nil {
		b.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
