package repo

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/scan"
)

// variant makes dir: the base tree (hard-linked, so cheap) plus a "bulk"
// directory of files whose content depends on the given keys: the files
// of one key are the same in every variant made with that key.
func variant(t testing.TB, base, dir string, files int, keys ...string) {
	t.Helper()
	if out, err := runCmd("cp", "-al", base, dir); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	bulk := filepath.Join(dir, "bulk")
	if err := os.Mkdir(bulk, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		h := fnv.New64a()
		h.Write([]byte(key))
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		for i := range files {
			data := make([]byte, 4096+rng.IntN(61440))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(bulk, fmt.Sprintf("%s-%03d", key, i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// smallTree makes a small tree of a few directories, files of various
// sizes, symlinks and an empty directory, and returns its path.
func smallTree(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	rng := rand.New(rand.NewPCG(7, 7))
	for i, size := range []int{0, 10, 64, 65, 1000, 4096, 5000, 20000, 70000, 150000, 300000} {
		sub := filepath.Join(dir, []string{"a", "b/c", "b/d/e"}[i%3])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", size)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../a/f1000", filepath.Join(dir, "b", "link"))
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	return dir
}

// imageDigestOf returns the digest the image of src has in a SHA-256
// repository of the default EROFS version, 1 (mkcomposefs
// --min-version=1).
func imageDigestOf(t testing.TB, src string) string {
	t.Helper()
	root, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := image.Digest(root, image.Options{MinVersion: 1, MaxVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	return fsverity.Hex(d)
}

// The acceptance test for crash safety: imports (child processes) killed
// with SIGKILL at random moments, many times, and a few garbage
// collections too. After every kill fsck must be clean (no partial object
// under a final name, no image referring to a missing object, no
// reference to a missing image), the reference must name a complete image
// of one of the sources, and in the end a retried import must succeed.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes 30 times")
	}
	r := newRepo(t, fsverity.SHA256)
	base := smallTree(t)
	work := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))

	// A first import stores the base.
	calib := filepath.Join(work, "calib")
	variant(t, base, calib, 48, "calib")
	if out, err := child(t, r.Dir(), "create", calib, "calib").CombinedOutput(); err != nil {
		t.Fatalf("import: %v: %s", err, out)
	}

	sources := map[string]string{} // image digest -> source, found as needed
	var srcs []string
	sourceOf := func(digest string) (string, bool) {
		for len(srcs) > 0 && sources[digest] == "" {
			src := srcs[len(srcs)-1]
			srcs = srcs[:len(srcs)-1]
			sources[imageDigestOf(t, src)] = src
		}
		src, ok := sources[digest]
		return src, ok
	}
	var tVariant, tChild, tFsck, tGC, tCheck time.Duration
	lap := func(d *time.Duration, since time.Time) { *d += time.Since(since) }
	const rounds = 30
	var killed, finished, gcKilled, dangling, leftovers int
	haveCurrent := false
	phases := map[string]int{} // where the kills of imports landed
	for i := range rounds {
		t0 := time.Now()
		src := filepath.Join(work, fmt.Sprintf("v%02d", i))
		// New content every round, some of it shared with the last.
		variant(t, base, src, 24, fmt.Sprintf("round-%d", i), fmt.Sprintf("round-%d", i-1))
		srcs = append(srcs, src)
		lap(&tVariant, t0)
		t0 = time.Now()

		// The kill comes a random time after a random point: the start of
		// the process, of the scan, of storing objects, or the end of that
		// (writing and publishing the image).
		op := child(t, r.Dir(), "create", src, "current")
		trigger := []string{"", "phase scanning", "phase storing", "end storing"}[rng.IntN(4)]
		delay := time.Duration(rng.Int64N(int64(15 * time.Millisecond)))
		if trigger == "" {
			delay = time.Duration(rng.Int64N(int64(60 * time.Millisecond)))
		}
		isGC := i%6 == 5
		if isGC {
			op = child(t, r.Dir(), "gc")
			trigger, delay = "", time.Duration(rng.Int64N(int64(40*time.Millisecond)))
		}
		phase, err := runAndKill(t, op, trigger, delay)
		if !isGC {
			phases[phase]++
		}
		switch {
		case err == nil:
			finished++
		case isKilled(err):
			if isGC {
				gcKilled++
			} else {
				killed++
			}
		default:
			t.Fatalf("round %d: child failed: %v", i, err)
		}

		lap(&tChild, t0)
		t0 = time.Now()
		res := fsckClean(t, r)
		lap(&tFsck, t0)
		t0 = time.Now()
		leftovers += len(res.Leftovers)
		dry, err := r.GC(ctx, GCOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		dangling += dry.ObjectsRemoved
		lap(&tGC, t0)
		t0 = time.Now()
		// "current" names a complete image of one of the sources.
		d, err := r.ResolveRef("current")
		if errors.Is(err, ErrNotFound) && !haveCurrent {
			continue // no import got that far yet
		}
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		haveCurrent = true
		src, ok := sourceOf(d.Hex())
		if !ok {
			t.Fatalf("round %d: current is %s, the image of no source", i, d)
		}
		if i%10 == 9 {
			checkImage(t, r, "current", src)
		}
		lap(&tCheck, t0)
	}
	t.Logf("time: variants %v, children %v, fsck %v, gc %v, check %v", tVariant, tChild, tFsck, tGC, tCheck)
	t.Logf("%d rounds: %d imports and %d collections killed, %d finished before the kill; "+
		"fsck clean after each; on average %d objects awaited collection after a round; %d leftover files seen in all",
		rounds, killed, gcKilled, finished, dangling/rounds, leftovers)
	t.Logf("imports were in these phases when killed: %v", phases)
	if killed < rounds/2 {
		t.Errorf("only %d imports were killed: the kills came too late", killed)
	}

	// A retried import succeeds and gives the right image.
	last := filepath.Join(work, fmt.Sprintf("v%02d", rounds-1))
	if out, err := child(t, r.Dir(), "create", last, "current").CombinedOutput(); err != nil {
		t.Fatalf("retried import: %v: %s", err, out)
	}
	checkImage(t, r, "current", last)
	g, err := r.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final gc: %d images, %d objects and %d leftovers removed", len(g.ImagesRemoved), g.ObjectsRemoved, len(g.Leftovers))
	if res := fsckClean(t, r); len(res.Leftovers) != 0 {
		t.Errorf("leftovers after gc: %q", res.Leftovers)
	}
	checkImage(t, r, "current", last)
	checkImage(t, r, "calib", calib)
}

// runAndKill starts cmd, and kills it with SIGKILL delay after it writes
// the line trigger to its standard error (at once if trigger is "") or
// when it ends. It returns the last phase line the child wrote ("starting"
// if none, "done" if it wrote its result) and how it ended.
func runAndKill(t testing.TB, cmd *exec.Cmd, trigger string, delay time.Duration) (string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	triggered, exited := make(chan struct{}), make(chan struct{})
	phase := "starting"
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			l := sc.Text()
			stderr.WriteString(l + "\n")
			if strings.HasPrefix(l, "phase ") || strings.HasPrefix(l, "end ") {
				phase = l
			}
			if trigger != "" && l == trigger {
				close(triggered)
			}
		}
	}()
	if trigger != "" {
		select {
		case <-triggered:
		case <-exited:
		}
	}
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	err = cmd.Wait()
	if stdout.Len() > 0 {
		phase = "done"
	}
	if err != nil && !isKilled(err) {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return phase, err
}

func isKilled(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// The acceptance test for concurrency: child processes import overlapping
// trees at once, each untagging its previous image (so that what it shares
// with the next becomes garbage for a moment), while another collects
// garbage in a loop. Every image must then read back equal to its source
// (and one is mounted), and fsck must be clean.
func TestConcurrentImportsAndGC(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	r := newRepo(t, fsverity.SHA256)
	base := sampleTree(t, 20)
	work := t.TempDir()
	const (
		children = 4
		cycles   = 3
	)
	// Child i imports work/c<i>-<k>: the base, files shared with its
	// neighbours, files of its own shared across its cycles, and files of
	// that cycle only.
	for i := range children {
		for k := range cycles {
			variant(t, base, filepath.Join(work, fmt.Sprintf("c%d-%d", i, k)), 12,
				fmt.Sprintf("pair-%d", i), fmt.Sprintf("pair-%d", (i+1)%children),
				fmt.Sprintf("own-%d", i), fmt.Sprintf("cycle-%d-%d", i, k))
		}
	}

	stop := filepath.Join(work, "stop")
	gc := child(t, r.Dir(), "gcloop", stop)
	gcOut, err := gc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var gcErr strings.Builder
	gc.Stderr = &gcErr
	if err := gc.Start(); err != nil {
		t.Fatal(err)
	}
	var collected struct {
		runs, objects, images int
	}
	var gcDone sync.WaitGroup
	gcDone.Add(1)
	go func() {
		defer gcDone.Done()
		sc := bufio.NewScanner(gcOut)
		for sc.Scan() {
			var g GCResult
			if json.Unmarshal(sc.Bytes(), &g) == nil {
				collected.runs++
				collected.objects += g.ObjectsRemoved
				collected.images += len(g.ImagesRemoved)
			}
		}
	}()

	// fsck runs meanwhile too (it shares the lock with imports), and must
	// find nothing wrong while they publish objects and images.
	fsckStop := make(chan struct{})
	fsckDone := make(chan struct{})
	fsckRuns := 0
	var fsckProblems []Problem
	go func() {
		defer close(fsckDone)
		for {
			select {
			case <-fsckStop:
				return
			default:
			}
			res, err := r.Fsck(ctx)
			if err != nil {
				fsckProblems = append(fsckProblems, Problem{Kind: "error", Detail: err.Error()})
				return
			}
			fsckRuns++
			fsckProblems = append(fsckProblems, res.Problems...)
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, children)
	outs := make([]string, children)
	start := time.Now()
	for i := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := child(t, r.Dir(), "cycle", filepath.Join(work, fmt.Sprintf("c%d", i)), fmt.Sprintf("c%d", i), fmt.Sprint(cycles)).CombinedOutput()
			errs[i], outs[i] = err, string(out)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(fsckStop)
	<-fsckDone
	os.WriteFile(stop, nil, 0o644)
	gcDone.Wait()
	if err := gc.Wait(); err != nil {
		t.Fatalf("gc loop: %v: %s", err, gcErr.String())
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("child %d: %v: %s", i, err, outs[i])
		}
	}
	t.Logf("%d children × %d imports in %v, with %d garbage collections meanwhile removing %d images and %d objects, and %d fsck runs",
		children, cycles, elapsed, collected.runs, collected.images, collected.objects, fsckRuns)
	if len(fsckProblems) > 0 {
		t.Errorf("fsck during the imports found problems: %+v", fsckProblems)
	}
	if collected.runs < 2 {
		t.Errorf("only %d garbage collections ran during the imports", collected.runs)
	}

	fsckClean(t, r)
	images, err := r.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(images) > children*cycles {
		t.Errorf("%d images", len(images))
	}
	for i := range children {
		checkImage(t, r, fmt.Sprintf("c%d-%d", i, cycles-1), filepath.Join(work, fmt.Sprintf("c%d-%d", i, cycles-1)))
	}
	if _, err := r.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if f := fsckClean(t, r); f.Images != children {
		t.Errorf("%d images after gc, want %d", f.Images, children)
	}
	for i := range children {
		checkImage(t, r, fmt.Sprintf("c%d-%d", i, cycles-1), filepath.Join(work, fmt.Sprintf("c%d-%d", i, cycles-1)))
	}

	// Mount one for real.
	if os.Geteuid() != 0 {
		t.Log("not root: no mount")
		return
	}
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	if _, err := r.Mount("c0-2", mnt, mount.Options{Verity: mount.VerityTry}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer mount.UnmountLazy(mnt)
	testutil.CompareTrees(t, filepath.Join(work, "c0-2"), mnt, testutil.CompareOptions{ComposefsWhiteouts: true})
	if err := mount.Unmount(mnt); err != nil {
		t.Error(err)
	}
}
