package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/tree"
)

// childEnv, when set, makes the test binary a child process doing one
// repository operation (see runChild) instead of running tests.
const childEnv = "GOCFS_REPO_TEST_CHILD"

func TestMain(m *testing.M) {
	if op := os.Getenv(childEnv); op != "" {
		os.Exit(runChild(op))
	}
	os.Exit(m.Run())
}

// runChild does what the parent test asked, with the repository at
// $GOCFS_REPO_DIR:
//
//	create SRC NAME        create-image SRC, reference NAME
//	cycle SRC PREFIX N     for k < N: create-image SRC-k as PREFIX-k, untag it unless last
//	gc                     one garbage collection
//	gcloop STOPFILE        garbage collections until STOPFILE exists
//
// It prints the ImportResult or GCResult as JSON, one per line.
func runChild(op string) int {
	args := strings.Split(os.Getenv("GOCFS_REPO_ARGS"), "\x1f")
	maxPending = 16 // several batches per import
	// Phases go to standard error as they start, for the parent to see
	// where a kill landed.
	progress := func(p Progress) {
		switch {
		case p.Finished:
			fmt.Fprintf(os.Stderr, "end %s\n", strings.Fields(p.Phase)[0])
		case p.Done == 0:
			fmt.Fprintf(os.Stderr, "phase %s\n", strings.Fields(p.Phase)[0])
		}
	}
	r, err := Open(os.Getenv("GOCFS_REPO_DIR"), Options{Threads: 1, Progress: progress})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", op, err)
		return 1
	}
	switch op {
	case "create":
		res, err := r.CreateImage(ctx, args[0], args[1], CreateOptions{})
		if err != nil {
			return fail(err)
		}
		out.Encode(res)
	case "cycle":
		n, _ := strconv.Atoi(args[2])
		for k := range n {
			name := fmt.Sprintf("%s-%d", args[1], k)
			res, err := r.CreateImage(ctx, fmt.Sprintf("%s-%d", args[0], k), name, CreateOptions{})
			if err != nil {
				return fail(err)
			}
			out.Encode(res)
			if k < n-1 {
				if err := r.Untag(name); err != nil {
					return fail(err)
				}
			}
		}
	case "gc":
		res, err := r.GC(ctx, GCOptions{})
		if err != nil {
			return fail(err)
		}
		out.Encode(res)
	case "gcloop":
		for {
			if _, err := os.Stat(args[0]); err == nil {
				return 0
			}
			res, err := r.GC(ctx, GCOptions{})
			if err != nil {
				return fail(err)
			}
			out.Encode(res)
			time.Sleep(5 * time.Millisecond)
		}
	default:
		return fail(fmt.Errorf("unknown operation"))
	}
	return 0
}

// child returns the command running this test binary as a child doing op.
func child(t testing.TB, repoDir, op string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+op, "GOCFS_REPO_DIR="+repoDir, "GOCFS_REPO_ARGS="+strings.Join(args, "\x1f"))
	return cmd
}

// runCmd runs a command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// newRepo initializes a repository in a new temporary directory.
func newRepo(t testing.TB, alg fsverity.Algorithm) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), InitOptions{Algorithm: alg}, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sampleTree makes a sample source tree (seed varies its content) and
// returns its path.
func sampleTree(t testing.TB, seed uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("src-%d", seed))
	opts := testutil.DefaultSampleOptions()
	opts.Seed = seed
	testutil.MakeSampleTree(t, dir, opts)
	return dir
}

// dumpString is the composefs-dump of a tree.
func dumpString(t testing.TB, root *tree.Node) string {
	t.Helper()
	var b bytes.Buffer
	w := dump.NewWriter(&b)
	if err := w.WriteTree(root); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkImage checks that the repository's image name is the image of the
// directory src: in a SHA-256 repository the very image mkcomposefs makes;
// in a SHA-512 one the same with the repository's object paths and SHA-512
// per-file digests. It also checks that the image reads back (image.Read)
// to the same image, and that each file's content, inline or from its
// object, is the source file's.
func checkImage(t testing.TB, r *Repo, name, src string) {
	t.Helper()
	want, err := scan.Dir(src, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Algorithm() != fsverity.SHA256 {
		want.Walk(func(p string, n *tree.Node) error {
			if hasObject(n) {
				sum, err := fsverity.DigestFile(filepath.Join(src, p), r.Algorithm())
				if err != nil {
					t.Fatal(err)
				}
				n.Payload, n.Digest = digest.MustNew(r.Algorithm(), sum).ObjectPath(), sum
			}
			return nil
		})
	}
	got, d, err := r.ReadImage(name)
	if err != nil {
		t.Fatalf("reading image %s: %v", name, err)
	}
	for what, root := range map[string]*tree.Node{"the image of " + src: want, "the image read back": got} {
		h := fsverity.New(r.Algorithm())
		iopts, err := r.imageOptions(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Write(h, root, iopts); err != nil {
			t.Fatal(err)
		}
		if sum := h.Sum(nil); !d.Equal(r.Algorithm(), sum) {
			t.Errorf("image %s has digest %s, %s has %s", name, d, what, fsverity.Hex(sum))
		}
	}
	files := 0
	got.Walk(func(p string, n *tree.Node) error {
		if !n.IsRegular() || n.LinkTo != nil {
			return nil
		}
		files++
		wantData, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		gotData := n.Content
		if hasObject(n) {
			d, err := r.ParseObjectRel(n.Payload)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if gotData, err = os.ReadFile(r.ObjectPath(d)); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		}
		if !bytes.Equal(wantData, gotData) {
			t.Errorf("image %s: %s has other content than %s", name, p, filepath.Join(src, p))
		}
		return nil
	})
	if files < 10 {
		t.Errorf("image %s: only %d regular files", name, files)
	}
}

// fsckClean runs Fsck and fails the test on any problem.
func fsckClean(t testing.TB, r *Repo) *FsckResult {
	t.Helper()
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if !res.OK() {
		b, _ := json.MarshalIndent(res.Problems, "", "  ")
		t.Fatalf("fsck found problems:\n%s", b)
	}
	return res
}
