//go:build vmguest && linux

package guest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/schema"
)

// guestMarker exists only in the test VM's initramfs.
const guestMarker = "/gocfs-vm-guest"

var (
	gocfsBin = envOr("GOCFS_BIN", "/bin/gocfs")
	diskDev  = envOr("GOCFS_VM_DISK", "/dev/vda") // ext4, 4 KiB blocks, -O verity
	dataDir  = envOr("GOCFS_VM_DATA", "/mnt/data")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(guestMarker); err != nil {
		fmt.Fprintf(os.Stderr, "the gocfs VM guest tests run only inside the test VM (test/vm/run.sh): "+
			"%s is missing, refusing to mount or write %s\n", guestMarker, diskDev)
		os.Exit(2)
	}
	if err := mountData(); err != nil {
		fmt.Printf("GOCFS-VM: cannot mount the data disk: %v\n", err)
		os.Exit(1)
	}
	reads.scope("kernel") // both scopes show up in the report, even empty
	reads.scope("gocfs")
	code := m.Run()
	reads.report()
	if err := unmount(dataDir); err != nil {
		fmt.Printf("GOCFS-VM: %v\n", err)
	}
	unix.Sync()
	os.Exit(code)
}

func mountData() error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(diskDev, dataDir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount -t ext4 %s %s: %w", diskDev, dataDir, err)
	}
	return nil
}

// ---------------------------------------------------------------- reads

// readStats counts reads expected to return the right bytes (intact) and
// reads expected to fail with EIO (tampered), per scope.
type readStats struct {
	order  []string
	scopes map[string]*readCount
}

type readCount struct{ intact, intactOK, tampered, tamperedEIO int }

var reads = readStats{scopes: map[string]*readCount{}}

func (r *readStats) scope(s string) *readCount {
	c, ok := r.scopes[s]
	if !ok {
		c = &readCount{}
		r.scopes[s] = c
		r.order = append(r.order, s)
	}
	return c
}

// report prints one GOCFS-VM-READS line per scope and a verdict. The
// verdict is clean only if every scope has both kinds of reads and all of
// them went as expected.
func (r *readStats) report() {
	var all readCount
	complete := len(r.order) > 0
	for _, s := range r.order {
		c := r.scopes[s]
		fmt.Printf("GOCFS-VM-READS: %s: intact reads matched %d/%d, tampered reads failed with EIO %d/%d\n",
			s, c.intactOK, c.intact, c.tamperedEIO, c.tampered)
		all.intact += c.intact
		all.intactOK += c.intactOK
		all.tampered += c.tampered
		all.tamperedEIO += c.tamperedEIO
		complete = complete && c.intact > 0 && c.tampered > 0
	}
	switch {
	case all.intactOK != all.intact || all.tamperedEIO != all.tampered:
		fmt.Printf("GOCFS-VM-VERDICT: BAD: tampered reads failed %d/%d, intact reads matched %d/%d\n",
			all.tamperedEIO, all.tampered, all.intactOK, all.intact)
	case !complete:
		fmt.Printf("GOCFS-VM-VERDICT: INCOMPLETE: a scope lacks intact or tampered reads (tampered failed %d/%d, intact matched %d/%d)\n",
			all.tamperedEIO, all.tampered, all.intactOK, all.intact)
	default:
		fmt.Printf("GOCFS-VM-VERDICT: 100%% of tampered reads failed (%d/%d), 100%% of intact reads matched (%d/%d)\n",
			all.tamperedEIO, all.tampered, all.intactOK, all.intact)
	}
}

// expectIntact reads path and requires exactly want.
func expectIntact(t *testing.T, scope, path string, want []byte) {
	t.Helper()
	c := reads.scope(scope)
	c.intact++
	got, err := os.ReadFile(path)
	switch {
	case err != nil:
		t.Errorf("intact read %s: %v (want %d bytes)", path, err, len(want))
	case !bytes.Equal(got, want):
		t.Errorf("intact read %s: got %d bytes, want %d; first difference at byte %d", path, len(got), len(want), firstDiff(got, want))
	default:
		c.intactOK++
	}
}

// expectEIO reads path and requires the read (or open) to fail with EIO.
func expectEIO(t *testing.T, scope, path string) {
	t.Helper()
	c := reads.scope(scope)
	c.tampered++
	got, err := os.ReadFile(path)
	switch {
	case errors.Is(err, syscall.EIO):
		c.tamperedEIO++
	case err == nil:
		t.Errorf("tampered read %s succeeded (%d bytes); want EIO", path, len(got))
	default:
		t.Errorf("tampered read %s: %v; want EIO", path, err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// --------------------------------------------------------------- mounts

func isMounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// mountLine returns the mountinfo line of the mount at path, for logs.
func mountLine(path string) string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return line
		}
	}
	return "(not mounted)"
}

// requireVerityOption requires the overlay mounted at path to show
// verity=require among its options, as upstream's verity and (on a kernel
// that has it) tryverity options give.
func requireVerityOption(t *testing.T, path string) {
	t.Helper()
	line := mountLine(path)
	if !strings.Contains(line, " - overlay ") || !slices.Contains(strings.Split(line[strings.LastIndex(line, " ")+1:], ","), "verity=require") {
		t.Errorf("mount on %s is not an overlay with verity=require: %s", path, line)
	}
}

// unmount unmounts path, retrying while it is busy (a loop device that
// backed a just-unmounted image may take a moment to let go).
func unmount(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Unmount(path, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("umount %s: %w", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loopBackings lists the files that loop devices are bound to.
func loopBackings() string {
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		out = append(out, strings.Split(p, "/")[3]+"="+strings.TrimSpace(string(b)))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

func mkdirMountpoint(t *testing.T, path string) {
	t.Helper()
	if isMounted(path) {
		t.Fatalf("%s is still mounted from an earlier step", path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// --------------------------------------------------------------- gocfs CLI

type cliResult struct {
	stdout, stderr string
	err            error
}

func (r cliResult) output() string { return r.stdout + r.stderr }

// gocfs runs the gocfs CLI and logs the command and what it printed.
func gocfs(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gocfsBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliResult{stdout.String(), stderr.String(), err}
	status := "exit 0"
	if err != nil {
		status = err.Error()
	}
	t.Logf("$ gocfs %s   [%s, %v]%s%s", strings.Join(args, " "), status, time.Since(start).Round(time.Millisecond),
		indent("stdout", r.stdout), indent("stderr", r.stderr))
	if err != nil && strings.Contains(r.stderr, "unknown command") {
		r.err = fmt.Errorf("%w: the gocfs CLI has no %q command (yet)", err, args[0])
	}
	return r
}

func indent(label, s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return "\n    " + label + ": " + strings.ReplaceAll(s, "\n", "\n        ")
}

// ---------------------------------------------------------- test content

// content returns n deterministic pseudo-random bytes for seed.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// text returns n bytes of numbered lines.
func text(tag string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %05d\n", tag, i)
	}
	return b.Bytes()[:n]
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// objectPath is where a content-addressed store keeps the object of digest.
func objectPath(store string, digest []byte) string {
	h := hexOf(digest)
	return filepath.Join(store, h[:2], h[2:])
}

// metacopy is the trusted.overlay.metacopy value naming a SHA-256 digest,
// as package schema encodes it (which overlayfs then checks).
func metacopy(d []byte) []byte {
	return schema.AppendMetacopy(nil, digest.MustNew(fsverity.SHA256, d))
}

// replaceFile atomically replaces path with data, enabling fs-verity on the
// new file first when verity is set.
func replaceFile(t *testing.T, path string, data []byte, verity bool) {
	t.Helper()
	tmp := path + ".gocfs-vm-tmp"
	writeFile(t, tmp, data, 0o644)
	if verity {
		if err := enablePath(tmp); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// ================================================================= tests

// TestKernelBaseline proves the VM itself: ext4 fs-verity, and overlayfs
// verity=require over a metacopy layer with a data-only lower layer, set up
// by hand (no gocfs CLI). If this fails, the gocfs results mean nothing.
func TestKernelBaseline(t *testing.T) {
	base := filepath.Join(dataDir, "kernel-baseline")
	objs := filepath.Join(base, "objects")
	meta := filepath.Join(base, "meta")

	t.Run("fsverity-enable-measure", func(t *testing.T) {
		for _, size := range []int{0, 1, 100, 4096, 4097, 3*4096 + 5, 129*4096 + 3} {
			p := filepath.Join(base, "plain", fmt.Sprintf("f%d", size))
			data := content(uint64(size), size)
			writeFile(t, p, data, 0o644)
			want, err := digestFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := measurePath(p); !errors.Is(err, fsverity.ErrNotEnabled) {
				t.Errorf("measure %s before enabling: %v; want fsverity.ErrNotEnabled", p, err)
			}
			if err := enablePath(p); err != nil {
				t.Errorf("%v", err)
				continue
			}
			got, err := measurePath(p)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s (%d bytes): kernel digest %x, userspace digest %x", p, size, got, want)
			}
			if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
				f.Close()
				t.Errorf("%s: opened a verity file for writing", p)
			}
			expectIntact(t, "kernel", p, data)
		}
	})

	t.Run("overlay-verity-require", func(t *testing.T) {
		good := text("good", 22222)
		noverity := text("noverity", 5555)
		replaced := text("replaced", 9999)
		put := func(data []byte, verity bool) []byte {
			d, err := fsverity.Digest(bytes.NewReader(data), fsverity.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			replaceFile(t, objectPath(objs, d), data, verity)
			return d
		}
		dGood := put(good, true)
		dNov := put(noverity, false)
		dRep := put(replaced, true)
		// The "replaced" object's file gets other bytes under the same name.
		evil := bytes.Clone(replaced)
		evil[len(evil)/2] ^= 0xff
		replaceFile(t, objectPath(objs, dRep), evil, true)
		wrong := bytes.Clone(dGood)
		wrong[0] ^= 0x01

		type entry struct {
			name   string
			size   int
			digest []byte // nil: an empty metacopy value (no digest)
			object []byte
		}
		entries := []entry{
			{"good", len(good), dGood, dGood},
			{"wrongdigest", len(good), wrong, dGood},
			{"nodigest", len(good), nil, dGood},
			{"noverity", len(noverity), dNov, dNov},
			{"replaced", len(replaced), dRep, dRep},
		}
		for _, e := range entries {
			p := filepath.Join(meta, e.name)
			writeFile(t, p, nil, 0o644)
			if err := os.Truncate(p, int64(e.size)); err != nil {
				t.Fatal(err)
			}
			mc := []byte{}
			if e.digest != nil {
				mc = metacopy(e.digest)
			}
			if err := unix.Setxattr(p, schema.Metacopy, mc, 0); err != nil {
				t.Fatal(err)
			}
			h := hexOf(e.object)
			if err := unix.Setxattr(p, schema.Redirect, schema.AppendRedirect(nil, h[:2]+"/"+h[2:]), 0); err != nil {
				t.Fatal(err)
			}
		}
		mnt := "/mnt/kernel-ovl"
		mkdirMountpoint(t, mnt)
		opts := "metacopy=on,redirect_dir=on,verity=require,lowerdir=" + meta + "::" + objs
		if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, opts); err != nil {
			t.Fatalf("mount -t overlay -o %s: %v", opts, err)
		}
		defer func() {
			if err := unmount(mnt); err != nil {
				t.Error(err)
			}
		}()
		expectIntact(t, "kernel", filepath.Join(mnt, "good"), good)
		for _, n := range []string{"wrongdigest", "nodigest", "noverity", "replaced"} {
			expectEIO(t, "kernel", filepath.Join(mnt, n))
		}
	})
}

// composefs is what scenario 1 leaves for the others.
type composefs struct {
	src, store, image string
	digest            string            // mkcomposefs --print-digest
	objects           map[string][]byte // source-relative path → fs-verity digest, for files > 64 bytes
	content           map[string][]byte // source-relative path → content, regular files
}

// Source-tree names the scenarios use.
const (
	fileMedium   = "medium.txt"
	fileBig      = "big.bin"
	fileReplace  = "tamper-replace.bin" // scenario 3
	fileDisk     = "tamper-disk.bin"    // scenario 4
	fileNoverity = "noverity.bin"       // scenario 6
	inlineMax    = 64                   // files up to this size are inlined, not stored
)

// buildSource writes the source tree and returns the regular files' contents.
func buildSource(t *testing.T, src string) map[string][]byte {
	t.Helper()
	dup := content(7, 5000)
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"small.txt", []byte("hello, composefs\n"), 0o644},
		{"empty", nil, 0o644},
		{"exactly64.bin", content(64, 64), 0o644},
		{"sixtyfive.bin", content(65, 65), 0o644},
		{fileMedium, text("medium", 3000), 0o644},
		{"block.bin", content(4096, 4096), 0o644},
		{"multi.bin", content(3, 3*4096+1), 0o644},
		{fileBig, content(600, 600*1024+7), 0o644}, // > 128 blocks: two Merkle levels
		{"dup-a.bin", dup, 0o644},
		{"sub/dup-b.bin", dup, 0o644},
		{"sub/dir/nested.bin", content(20000, 20000), 0o600},
		{"sub/script.sh", append([]byte("#!/bin/sh\n"), text("echo", 190)...), 0o755},
		{fileReplace, content(31, 10000), 0o644},
		{fileDisk, text("disk", 9000), 0o644},
		{fileNoverity, content(61, 7000), 0o644},
	}
	got := map[string][]byte{}
	for _, f := range files {
		writeFile(t, filepath.Join(src, f.name), f.data, f.mode)
		got[f.name] = f.data
	}
	if err := os.Symlink("../"+fileMedium, filepath.Join(src, "sub/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("does/not/exist", filepath.Join(src, "sub/dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "sub/emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return got
}

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestComposefs drives the gocfs CLI the way users do. The subtests run in
// order and share the image of the first; each one fails (never skips) when
// what it needs is missing.
func TestComposefs(t *testing.T) {
	var cfs *composefs
	need := func(t *testing.T) *composefs {
		t.Helper()
		if cfs == nil {
			t.Fatal("no composefs image: scenario 1 (gocfs mkcomposefs --digest-store) did not produce one")
		}
		return cfs
	}
	mnt := "/mnt/cfs"
	mountCfs := func(t *testing.T, c *composefs, opts string) cliResult {
		t.Helper()
		mkdirMountpoint(t, mnt)
		r := gocfs(t, "mount.composefs", "-o", opts, c.image, mnt)
		if r.err == nil && !isMounted(mnt) {
			r.err = fmt.Errorf("gocfs mount.composefs exited 0 but nothing is mounted on %s", mnt)
		}
		if r.err == nil {
			t.Logf("mounted: %s", mountLine(mnt))
		}
		return r
	}
	umountCfs := func(t *testing.T) {
		t.Helper()
		if isMounted(mnt) {
			if err := unmount(mnt); err != nil {
				t.Error(err)
			}
		}
	}

	t.Run("1-mkcomposefs-digest-store", func(t *testing.T) {
		root := filepath.Join(dataDir, "cfs")
		c := &composefs{
			src:   filepath.Join(root, "src"),
			store: filepath.Join(root, "objects"),
			image: filepath.Join(root, "image.cfs"),
		}
		c.content = buildSource(t, c.src)
		if err := os.MkdirAll(c.store, 0o755); err != nil {
			t.Fatal(err)
		}
		r := gocfs(t, "mkcomposefs", "--digest-store="+c.store, "--print-digest", c.src, c.image)
		if r.err != nil {
			t.Fatalf("gocfs mkcomposefs: %v", r.err)
		}
		lines := strings.Fields(r.stdout)
		if len(lines) != 1 || !digestRE.MatchString(lines[0]) {
			t.Fatalf("mkcomposefs --print-digest printed %q; want one line of 64 hex digits", r.stdout)
		}
		c.digest = lines[0]

		img, err := os.ReadFile(c.image)
		if err != nil {
			t.Fatal(err)
		}
		if len(img) < 1028 || !bytes.Equal(img[1024:1028], []byte{0xe2, 0xe1, 0xf5, 0xe0}) {
			t.Errorf("%s (%d bytes) has no EROFS superblock magic at 1024", c.image, len(img))
		}

		// Every file over 64 bytes is in the store under its digest, with
		// fs-verity enabled (kernel measure == userspace digest == name),
		// holding the same bytes; nothing else is in the store.
		c.objects = map[string][]byte{}
		want := map[string]string{} // object path → a source file
		for name, data := range c.content {
			if len(data) <= inlineMax {
				continue
			}
			d, err := digestFile(filepath.Join(c.src, name))
			if err != nil {
				t.Fatal(err)
			}
			c.objects[name] = d
			want[objectPath(c.store, d)] = name
		}
		for obj, name := range want {
			stored, err := os.ReadFile(obj)
			if err != nil {
				t.Errorf("object of %s: %v", name, err)
				continue
			}
			if !bytes.Equal(stored, c.content[name]) {
				t.Errorf("object %s differs from %s", obj, name)
			}
			m, err := measurePath(obj)
			if err != nil {
				t.Errorf("object %s of %s has no fs-verity: %v", obj, name, err)
				continue
			}
			if !bytes.Equal(m, c.objects[name]) {
				t.Errorf("object %s: kernel fs-verity digest %x, userspace digest %x", obj, m, c.objects[name])
			}
		}
		var extra []string
		err = filepath.WalkDir(c.store, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				if _, ok := want[p]; !ok {
					extra = append(extra, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("walk the store: %v", err)
		}
		if len(extra) > 0 {
			t.Errorf("unexpected files in the store (files of <= %d bytes are inlined; equal contents share one object): %v", inlineMax, extra)
		}
		if len(want) != len(c.objects)-1 { // dup-a.bin and sub/dup-b.bin share an object
			t.Errorf("%d objects expected for %d stored files; the test's source tree is wrong", len(want), len(c.objects))
		}
		if !t.Failed() {
			cfs = c
		}
	})

	t.Run("1b-composefs-info-measure-file", func(t *testing.T) {
		c := need(t)
		for _, name := range []string{fileMedium, fileBig, "sixtyfive.bin"} {
			obj := objectPath(c.store, c.objects[name])
			r := gocfs(t, "composefs-info", "measure-file", obj)
			if r.err != nil {
				t.Errorf("gocfs composefs-info measure-file: %v", r.err)
				continue
			}
			if got := strings.TrimSpace(r.stdout); got != hexOf(c.objects[name]) {
				t.Errorf("measure-file %s printed %q; want %s", obj, got, hexOf(c.objects[name]))
			}
		}
	})

	t.Run("2-mount-verity-digest", func(t *testing.T) {
		c := need(t)
		// mount.composefs digest= checks the image's own fs-verity digest,
		// so the image file needs fs-verity (users run `fsverity enable`).
		if _, err := measurePath(c.image); errors.Is(err, fsverity.ErrNotEnabled) {
			if err := enablePath(c.image); err != nil {
				t.Fatal(err)
			}
		}
		m, err := measurePath(c.image)
		if err != nil {
			t.Fatal(err)
		}
		if hexOf(m) != c.digest {
			t.Errorf("image fs-verity digest is %x; mkcomposefs --print-digest said %s", m, c.digest)
		}
		r := mountCfs(t, c, "basedir="+c.store+",verity,digest="+c.digest)
		if r.err != nil {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		defer umountCfs(t)
		requireVerityOption(t, mnt)
		compareTrees(t, c.src, mnt)
	})

	t.Run("5-wrong-digest-refused", func(t *testing.T) {
		c := need(t)
		wrong := []byte(c.digest)
		if wrong[0] == '0' {
			wrong[0] = '1'
		} else {
			wrong[0] = '0'
		}
		r := mountCfs(t, c, "basedir="+c.store+",verity,digest="+string(wrong))
		defer umountCfs(t)
		if r.err == nil {
			t.Fatalf("mount.composefs with a wrong digest= succeeded")
		}
		if strings.Contains(r.stderr, "unknown command") {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		var ee *exec.ExitError
		if !errors.As(r.err, &ee) || ee.ExitCode() <= 0 {
			t.Errorf("mount.composefs with a wrong digest=: %v; want a non-zero exit", r.err)
		}
		if out := strings.ToLower(r.output()); !strings.Contains(out, "digest") && !strings.Contains(out, "verity") {
			t.Errorf("mount.composefs with a wrong digest= said %q; want a message about the digest", r.output())
		}
		if isMounted(mnt) {
			t.Errorf("%s is mounted after a refused mount", mnt)
		}
	})

	t.Run("3-replaced-object-eio", func(t *testing.T) {
		c := need(t)
		obj := objectPath(c.store, c.objects[fileReplace])
		evil := bytes.Clone(c.content[fileReplace])
		evil[len(evil)/2] ^= 0xff
		replaceFile(t, obj, evil, true)
		if m, err := measurePath(obj); err != nil || bytes.Equal(m, c.objects[fileReplace]) {
			t.Fatalf("replaced object %s: measure %x, %v; want fs-verity with another digest", obj, m, err)
		}
		r := mountCfs(t, c, "basedir="+c.store+",verity,digest="+c.digest)
		if r.err != nil {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		defer umountCfs(t)
		expectEIO(t, "gocfs", filepath.Join(mnt, fileReplace))
		expectIntact(t, "gocfs", filepath.Join(mnt, fileMedium), c.content[fileMedium])
		expectIntact(t, "gocfs", filepath.Join(mnt, fileBig), c.content[fileBig])
	})

	t.Run("4-raw-disk-tamper-eio", func(t *testing.T) {
		c := need(t)
		obj := objectPath(c.store, c.objects[fileDisk])
		orig := c.content[fileDisk]
		f, err := os.Open(obj)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := firstExtent(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		const at, n = 100, 16
		if ext.Length < at+n {
			t.Fatalf("first extent of %s is %d bytes", obj, ext.Length)
		}
		off := int64(ext.Physical) + at
		t.Logf("%s: data at byte %d of %s; tampering %d bytes at %d", obj, ext.Physical, diskDev, n, off)

		umountCfs(t)
		if err := unmount(dataDir); err != nil {
			t.Fatalf("%v (loop devices still backed by files: %s)", err, loopBackings())
		}
		remounted := false
		defer func() {
			if !remounted {
				if err := mountData(); err != nil {
					t.Error(err)
				}
			}
		}()
		dev, err := os.OpenFile(diskDev, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		if _, err := dev.ReadAt(buf, off); err != nil {
			dev.Close()
			t.Fatal(err)
		}
		if !bytes.Equal(buf, orig[at:at+n]) {
			dev.Close()
			t.Fatalf("bytes at %d of %s are %q; FIEMAP says they are %q of %s", off, diskDev, buf, orig[at:at+n], fileDisk)
		}
		for i := range buf {
			buf[i] ^= 0xff
		}
		if _, err := dev.WriteAt(buf, off); err != nil {
			dev.Close()
			t.Fatal(err)
		}
		if err := dev.Sync(); err != nil {
			t.Fatal(err)
		}
		dev.Close()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			t.Fatal(err)
		}
		if err := mountData(); err != nil {
			t.Fatal(err)
		}
		remounted = true

		expectEIO(t, "kernel", obj) // fs-verity itself, straight from ext4
		r := mountCfs(t, c, "basedir="+c.store+",verity,digest="+c.digest)
		if r.err != nil {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		defer umountCfs(t)
		expectEIO(t, "gocfs", filepath.Join(mnt, fileDisk))
		expectIntact(t, "gocfs", filepath.Join(mnt, fileMedium), c.content[fileMedium])
		expectIntact(t, "gocfs", filepath.Join(mnt, "multi.bin"), c.content["multi.bin"])
	})

	t.Run("6-tryverity-requires-verity", func(t *testing.T) {
		c := need(t)
		defer umountCfs(t)
		obj := objectPath(c.store, c.objects[fileNoverity])
		replaceFile(t, obj, c.content[fileNoverity], false) // same bytes, no fs-verity
		if _, err := measurePath(obj); !errors.Is(err, fsverity.ErrNotEnabled) {
			t.Fatalf("measure %s: %v; want fsverity.ErrNotEnabled", obj, err)
		}
		r := mountCfs(t, c, "basedir="+c.store+",tryverity")
		if r.err != nil {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		requireVerityOption(t, mnt)
		expectEIO(t, "gocfs", filepath.Join(mnt, fileNoverity))
		expectIntact(t, "gocfs", filepath.Join(mnt, fileMedium), c.content[fileMedium])
		umountCfs(t)

		// Control: without verity options the very same object reads fine,
		// so the EIO above came from the verity requirement.
		r = mountCfs(t, c, "basedir="+c.store)
		if r.err != nil {
			t.Fatalf("gocfs mount.composefs: %v", r.err)
		}
		defer umountCfs(t)
		expectIntact(t, "gocfs", filepath.Join(mnt, fileNoverity), c.content[fileNoverity])
	})
}

// compareTrees requires got to hold the same names, types, permissions,
// sizes, symlink targets and file contents as want.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v in the mount, %v in the source", rel, gi.Mode(), wi.Mode())
			return nil
		}
		switch {
		case wi.Mode().IsRegular():
			if gi.Size() != wi.Size() {
				t.Errorf("%s: size %d in the mount, %d in the source", rel, gi.Size(), wi.Size())
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			expectIntact(t, "gocfs", q, data)
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, err := os.Readlink(q)
			if err != nil || gl != wl {
				t.Errorf("%s: symlink to %q (%v) in the mount, to %q in the source", rel, gl, err, wl)
			}
		case wi.IsDir():
			wn, gn := dirNames(t, p), dirNames(t, q)
			if !slices.Equal(wn, gn) {
				t.Errorf("%s/: entries %q in the mount, %q in the source", rel, gn, wn)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return nil
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
