package mountd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/repo"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	code := testutil.Main(m)
	if fix.dir != "" {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// fixture is what every test uses: a sample tree, a repository holding
// its image, a copy of the image file, and this test binary, in a
// directory an unprivileged user can read.
type fixture struct {
	dir     string
	src     string
	repo    string
	objects string
	imgRef  string // the image's name in the repository
	image   string // a copy of the image file
	bin     string // a copy of this test binary
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

// unprivUID is the unprivileged user of the tests (nobody), and
// otherUID one the policy does not allow.
const (
	unprivUID = "65534"
	otherUID  = "65533"
)

func getFixture(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	fixOnce.Do(func() { fixErr = makeFixture(t) })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return &fix
}

func makeFixture(t *testing.T) error {
	dir, err := os.MkdirTemp("", "gocfs-mountd-test-")
	if err != nil {
		return err
	}
	fix.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	fix.src = filepath.Join(dir, "src")
	testutil.MakeSampleTree(t, fix.src, testutil.SampleOptions{Hardlinks: true})
	fix.repo = filepath.Join(dir, "repo")
	r, err := repo.Init(fix.repo, repo.InitOptions{}, repo.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.CreateImage(context.Background(), fix.src, "app", repo.CreateOptions{})
	if err != nil {
		return err
	}
	fix.imgRef, fix.objects = "app", r.ObjectsDir()
	d, err := r.ParseDigest(res.Image)
	if err != nil {
		return err
	}
	fix.image = filepath.Join(dir, "image.cfs")
	if err := copyFile(r.ImagePath(d), fix.image); err != nil {
		return err
	}
	fix.bin = filepath.Join(dir, "mountd.test")
	return copyFile("/proc/self/exe", fix.bin)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// imageVariant writes a copy of the fixture's image changed by patch, and
// returns its path.
func imageVariant(t *testing.T, patch func(img []byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(getFixture(t).image)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "variant.cfs")
	if err := os.WriteFile(p, patch(b), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// service is a running service on a socket of its own.
type service struct {
	*Service
	socket string
	cancel context.CancelFunc
	done   chan error
}

// startService runs a service with the fixture's policy (changed by edit)
// until the end of the test.
func startService(t *testing.T, edit func(*Policy)) *service {
	t.Helper()
	f := getFixture(t)
	p := &Policy{
		Stores:       []Place{{Name: "objects", Path: f.objects}},
		Repositories: []Place{{Name: "test", Path: f.repo}},
		Users:        []string{unprivUID},
		// Connections close asynchronously: tests of other limits must
		// not trip over this one.
		Limits: Limits{MaxConcurrent: 64},
	}
	if edit != nil {
		edit(p)
	}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(p, WithLog(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp(f.dir, "sock-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sockDir, 0o755)
	sock := filepath.Join(sockDir, "mountd.socket")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{Service: svc, socket: sock, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- svc.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		os.RemoveAll(sockDir)
	})
	return s
}

// runHelper runs the helper as uid in a user and mount namespace of its
// own, with req, and returns what it reports.
func runHelper(t *testing.T, uid string, req helperRequest) helperResult {
	t.Helper()
	f := getFixture(t)
	if req.Target == "" {
		req.Target = "/mnt" // in the helper's own mount namespace
	}
	b, _ := json.Marshal(req)
	cmd := exec.Command("setpriv", "--reuid="+uid, "--regid="+uid, "--clear-groups",
		"unshare", "-U", "-m", "-r", "--", f.bin)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if _, lerr := exec.LookPath("setpriv"); lerr != nil {
			t.Skipf("setpriv (util-linux) not installed: %v", lerr)
		}
		t.Fatalf("helper: %v\n%s", err, stderr.Bytes())
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper's report %q: %v\n%s", out, err, stderr.Bytes())
	}
	if res.Error != "" {
		t.Fatalf("helper: %s", res.Error)
	}
	return res
}

// checkMounted checks what the helper saw: the source tree, read-only,
// nodev, nosuid.
func checkMounted(t *testing.T, res helperResult, readable func(fs.FileMode) bool) {
	t.Helper()
	if res.RefusedKind != "" {
		t.Fatalf("refused: %s: %s", res.RefusedKind, res.Reason)
	}
	opts := strings.Fields(res.MountInfo)
	if len(opts) < 6 {
		t.Fatalf("no mountinfo line for the mount: %q", res.MountInfo)
	}
	for _, want := range []string{"ro", "nosuid", "nodev"} {
		if !strings.Contains(","+opts[5]+",", ","+want+",") {
			t.Errorf("mount options %s lack %s", opts[5], want)
		}
	}
	if !strings.Contains(res.MountInfo, " - overlay composefs ") {
		t.Errorf("not a composefs overlay: %s", res.MountInfo)
	}
	if !strings.Contains(res.Remount, "read-only file system") {
		t.Errorf("writing to the mount: %s, want a read-only file system", res.Remount)
	}
	want, err := manifest(getFixture(t).src, readable)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(res.Files) {
		t.Errorf("the mount has %d entries, the source %d", len(res.Files), len(want))
	}
	bad := 0
	for p, w := range want {
		if g := res.Files[p]; g != w && bad < 10 {
			bad++
			t.Errorf("%s: mount has %q, source %q", p, g, w)
		}
	}
}

// TestUnprivilegedRepositoryMount is the acceptance test: an unprivileged
// user in its own user and mount namespace mounts an image of the
// configured repository through the service, id-mapped to its namespace,
// attaches it and reads every file: the tree is the source's, and the
// mount is read-only, nodev and nosuid.
func TestUnprivilegedRepositoryMount(t *testing.T) {
	s := startService(t, nil)
	res := runHelper(t, unprivUID, helperRequest{Socket: s.socket, Repository: "test", Name: getFixture(t).imgRef, IDMap: true})
	checkMounted(t, res, nil)
	if res.RootUID != 0 {
		t.Errorf("id-mapped mount: the root directory is owned by uid %d in the caller's namespace, want 0 (the caller)", res.RootUID)
	}
}

// TestUnprivilegedFDMount passes the image as a descriptor, without an id
// mapping: the files show as owned by the overflow uid, and only those
// others may read are readable.
func TestUnprivilegedFDMount(t *testing.T) {
	s := startService(t, nil)
	res := runHelper(t, unprivUID, helperRequest{Socket: s.socket, ImagePath: getFixture(t).image})
	checkMounted(t, res, func(m fs.FileMode) bool {
		if m.IsDir() {
			return m&0o005 == 0o005
		}
		return m&0o004 != 0
	})
	if res.RootUID != 65534 {
		t.Errorf("without id mapping the root directory shows as uid %d, want the overflow uid 65534", res.RootUID)
	}
}

// TestDisallowedUser: a user the policy does not name is refused, saying
// so.
func TestDisallowedUser(t *testing.T) {
	s := startService(t, nil)
	res := runHelper(t, otherUID, helperRequest{Socket: s.socket, Repository: "test", Name: "app"})
	if res.RefusedKind != ErrPermissionDenied.Error() || !strings.Contains(res.Reason, "uid "+otherUID) {
		t.Fatalf("got %q: %q, want a permission refusal naming uid %s", res.RefusedKind, res.Reason, otherUID)
	}
}

// TestGroupAllowed: a user the policy names by a group is allowed.
func TestGroupAllowed(t *testing.T) {
	p := &Policy{Stores: []Place{{Name: "s", Path: "/s"}}, Groups: []string{"4242"}}
	if err := p.Allow(4243, 4242); err != nil {
		t.Errorf("member of an allowed group (primary gid): %v", err)
	}
	if err := p.Allow(4243, 4243); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("non-member: %v, want a permission refusal", err)
	}
}

// client connects to s as root, in this process.
func client(t *testing.T, s *service) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mountFile asks s to mount the image file at path, as root.
func mountFile(t *testing.T, s *service, path string) (*os.File, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Dial(context.Background(), s.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mnt, _, err := c.Mount(context.Background(), MountSpec{Image: f})
	return mnt, err
}

// wantRefusal checks that err is a refusal of kind whose reason has each
// of words.
func wantRefusal(t *testing.T, mnt *os.File, err error, kind error, words ...string) {
	t.Helper()
	if mnt != nil {
		mnt.Close()
	}
	var r *Refusal
	if !errors.As(err, &r) || !errors.Is(err, kind) {
		t.Fatalf("got %v, want a refusal: %v", err, kind)
	}
	for _, w := range words {
		if !strings.Contains(r.Reason, w) {
			t.Errorf("reason %q does not say %q", r.Reason, w)
		}
	}
}

// TestRefusals: images the service must not mount, each refused with why,
// and nothing left behind.
func TestRefusals(t *testing.T) {
	s := startService(t, nil)
	before := resources(t)
	f := getFixture(t)
	for _, tc := range []struct {
		name  string
		image func(t *testing.T) string
		kind  error
		words []string
	}{
		{"verifier", func(t *testing.T) string {
			return imageVariant(t, func(b []byte) []byte { testutil.BreakRootXattrs(t, b); return b })
		}, ErrImageRefused, []string{"verifier refused", "xattr"}},
		{"noncanonical", func(t *testing.T) string {
			// The bytes between the composefs header and the EROFS
			// superblock are padding the writer leaves zero; nothing
			// reads them, and the verifier does not look.
			return imageVariant(t, func(b []byte) []byte { b[512] = 0x5a; return b })
		}, ErrImageRefused, []string{"not canonical", "offset 0x200"}},
		{"trailing", func(t *testing.T) string {
			return imageVariant(t, func(b []byte) []byte { return append(b, make([]byte, 4096)...) })
		}, ErrImageRefused, nil},
		{"redirect", func(t *testing.T) string {
			return imageVariant(t, func(b []byte) []byte { redirectOutside(t, b); return b })
		}, ErrImageRefused, []string{"redirect"}},
		{"not composefs", func(t *testing.T) string {
			return imageVariant(t, func(b []byte) []byte { return bytes.Repeat([]byte{0}, 8192) })
		}, ErrImageRefused, []string{"verifier"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt, err := mountFile(t, s, tc.image(t))
			wantRefusal(t, mnt, err, tc.kind, tc.words...)
		})
	}
	t.Run("good", func(t *testing.T) {
		mnt, err := mountFile(t, s, f.image)
		if err != nil {
			t.Fatal(err)
		}
		mnt.Close()
	})
	waitIdle(t, s)
	checkNoLeaks(t, before)
}

// redirectOutside points the first redirect of the image at a path out
// of the object store, keeping its length.
func redirectOutside(t *testing.T, img []byte) {
	t.Helper()
	const path = "/size-0065536"
	old := bytes.Index(img, []byte("redirect"))
	if old < 0 {
		t.Fatal("no redirect in the image")
	}
	out := "../../../../etc/passwd"
	// The stored value is "/" + "XX/" + hex: make one as long.
	d := len("/xx/") + 128
	v := "/" + strings.Repeat("./", (d-1-len(out))/2)
	v += strings.Repeat("/", d-len(v)-len(out)) + out
	testutil.PatchXattr(t, img, path, "trusted.overlay.redirect", []byte(v))
}

// TestDevicesRefused: an image with a device node is refused: nodev on a
// handed-out mount is no guarantee (the caller may clear it).
func TestDevicesRefused(t *testing.T) {
	s := startService(t, nil)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{Privileged: true})
	img := filepath.Join(dir, "dev.cfs")
	testutil.Mkcomposefs(t, src, img, getFixture(t).objects)
	mnt, err := mountFile(t, s, img)
	wantRefusal(t, mnt, err, ErrImageRefused, "device")
}

// TestLimits: a caller over its mount count, image size or connection
// count is refused, saying which limit.
func TestLimits(t *testing.T) {
	f := getFixture(t)
	t.Run("mounts", func(t *testing.T) {
		s := startService(t, func(p *Policy) { p.Limits.MaxMounts = 2 })
		for range 2 {
			mnt, err := mountFile(t, s, f.image)
			if err != nil {
				t.Fatal(err)
			}
			mnt.Close()
		}
		mnt, err := mountFile(t, s, f.image)
		wantRefusal(t, mnt, err, ErrLimitReached, "maxMounts", "2 mount requests")
	})
	t.Run("size", func(t *testing.T) {
		s := startService(t, func(p *Policy) { p.Limits.MaxImageSize = 8192 })
		mnt, err := mountFile(t, s, f.image)
		wantRefusal(t, mnt, err, ErrLimitReached, "maxImageSize")
	})
	t.Run("connections", func(t *testing.T) {
		s := startService(t, func(p *Policy) { p.Limits.MaxConcurrent = 1 })
		before := resources(t)
		first := client(t, s)
		mnt, _, err := first.Mount(context.Background(), MountSpec{Repository: "test", Name: "app"})
		if err != nil {
			t.Fatal(err)
		}
		mnt.Close()
		second := client(t, s)
		mnt, _, err = second.Mount(context.Background(), MountSpec{Repository: "test", Name: "app"})
		wantRefusal(t, mnt, err, ErrLimitReached, "maxConcurrent")
		// Connections over the limit that send nothing are closed soon,
		// not held for the policy's timeout.
		start := time.Now()
		for range 5 {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: s.socket, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("an idle connection over the limit: read %d bytes, %v; want the service to close it", n, err)
			}
			c.Close()
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("idle connections over the limit were held %v", d)
		}
		first.Close()
		second.Close()
		waitIdle(t, s)
		checkNoLeaks(t, before)
	})
}

// resources counts what a leak would leave: this process's descriptors
// (a detached mount is one), the mounts the service would attach (the
// EROFS mount's temporary directory, on kernels that need one), and the
// loop devices over the service's sealed copies. Only what is the
// service's is counted: other tests on this machine mount too.
type resourceCount struct{ fds, mounts, loops int }

func resources(t *testing.T) resourceCount {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	loops := 0
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("memfd:gocfs:the image passed")) || bytes.Contains(b, []byte("memfd:gocfs:image app of repository")) {
			loops++
		}
	}
	return resourceCount{len(fds), bytes.Count(mi, []byte(".gocfs-erofs-")), loops}
}

// waitIdle waits until the service serves no connection and works on no
// request.
func waitIdle(t *testing.T, s *service) {
	t.Helper()
	for range 500 {
		s.mu.Lock()
		conns := 0
		for _, st := range s.callers {
			conns += st.conns
		}
		s.mu.Unlock()
		if conns == 0 {
			s.work.Wait()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the service still serves connections after 5s")
}

// checkNoLeaks waits (a little: loop devices detach asynchronously) for
// the counts to come back to before.
func checkNoLeaks(t *testing.T, before resourceCount) {
	t.Helper()
	var now resourceCount
	for range 100 {
		if now = resources(t); now.fds <= before.fds && now.mounts <= before.mounts && now.loops <= before.loops {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("leak: before %+v, after %+v", before, now)
}

// TestHostileClients: malformed messages, a huge message, descriptors of
// the wrong type, too many descriptors, connections closed mid-request:
// each is refused or dropped, the service goes on serving, and no
// descriptor, mount or loop device stays behind.
func TestHostileClients(t *testing.T) {
	s := startService(t, func(p *Policy) { p.Limits.MaxMounts = 1000 })
	f := getFixture(t)
	// Warm up (the first mount loads what stays: modules, the runtime's
	// descriptors), then count.
	if mnt, err := mountFile(t, s, f.image); err != nil {
		t.Fatal(err)
	} else {
		mnt.Close()
	}
	waitIdle(t, s)
	before := resources(t)
	raw := func(t *testing.T, msg []byte, files ...*os.File) []byte {
		return rawRequest(t, s.socket, msg, files...)
	}
	t.Run("malformed", func(t *testing.T) {
		for _, m := range []string{"{not json\x00", "\x00", "[]\x00", `{"method":"io.gocfs.MountImage.Mount","parameters":{"imageFileDescriptor":"x"}}` + "\x00",
			`{"method":"io.gocfs.MountImage.Mount","parameters":{"imageFileDescriptor":7}}` + "\x00",
			`{"method":"nodots"}` + "\x00", `{"method":"io.gocfs.MountImage.Nope"}` + "\x00"} {
			reply := raw(t, []byte(m))
			if bytes.Contains(reply, []byte("mountFileDescriptor")) {
				t.Errorf("%q: got a mount: %s", m, reply)
			}
		}
	})
	t.Run("huge", func(t *testing.T) {
		// The service drops the connection once the message passes its
		// limit, rather than buffering until the idle timeout.
		start := time.Now()
		if reply := raw(t, bytes.Repeat([]byte("x"), 1<<20)); len(reply) != 0 {
			t.Errorf("got a reply: %.100q", reply)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the service held a huge message for %v", d)
		}
	})
	t.Run("wrong descriptor types", func(t *testing.T) { hostileDescriptors(t, s) })
	t.Run("too many descriptors", func(t *testing.T) {
		img, err := os.Open(f.image)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		many := []*os.File{img, img, img, img, img, img, img, img}
		reply := raw(t, []byte(`{"method":"io.gocfs.MountImage.Mount","parameters":{"imageFileDescriptor":0}}`+"\x00"), many...)
		if len(reply) != 0 {
			t.Errorf("got a reply: %s", reply)
		}
	})
	t.Run("closed mid-request", func(t *testing.T) {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: s.socket, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(`{"method":"io.gocfs.MountImage.Mount","param`))
		c.Close()
		// A whole request, then gone before the reply: the mount made
		// for it must be closed.
		img, err := os.Open(f.image)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: s.socket, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMsgUnix([]byte(`{"method":"io.gocfs.MountImage.Mount","parameters":{"imageFileDescriptor":0}}`+"\x00"), rights([]int{int(img.Fd())}), nil)
		c.Close()
	})
	// The service still serves, also while a client stalls mid-message.
	stalled, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: s.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stalled.Write([]byte(`{"method":"io.gocfs.MountImage.Mount",`))
	mnt, err := mountFile(t, s, f.image)
	stalled.Close()
	if err != nil {
		t.Fatalf("after the hostile clients: %v", err)
	}
	mnt.Close()
	waitIdle(t, s)
	checkNoLeaks(t, before)
}

// TestUserNSOwner: an id mapping is only made with a user namespace the
// caller owns, and only with a user namespace.
func TestUserNSOwner(t *testing.T) {
	ns, err := os.Open("/proc/self/ns/user") // the initial one, owned by root
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	mnt, err := os.Open("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	defer mnt.Close()
	zero, one := 0, 1
	fds := []*os.File{ns, mnt}
	_, err = callerUserNS(&unix.Ucred{Uid: 1000}, &zero, fds)
	wantRefusal(t, nil, err, ErrPermissionDenied, "belongs to uid 0", "uid 1000")
	_, err = callerUserNS(&unix.Ucred{Uid: 1000}, &one, fds)
	wantRefusal(t, nil, err, ErrBadRequest, "not a user namespace")
	if f, err := callerUserNS(&unix.Ucred{Uid: 0}, &zero, fds); err != nil || f != ns {
		t.Errorf("root's own namespace: %v", err)
	}
}

// TestDamagedRepositoryImage: a repository's image whose content is not
// what the repository names it by is refused.
func TestDamagedRepositoryImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d", "f"), bytes.Repeat([]byte("x"), 5000), 0o644))
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.InitOptions{}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.CreateImage(context.Background(), src, "img", repo.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.ParseDigest(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	obj := r.ObjectPath(d)
	b, err := os.ReadFile(obj)
	must(t, err)
	b[512] ^= 1
	must(t, os.Chmod(obj, 0o644))
	must(t, os.WriteFile(obj, b, 0o644))

	s := startService(t, func(p *Policy) { p.Repositories = []Place{{Name: "damaged", Path: r.Dir()}} })
	mnt, _, err := client(t, s).Mount(context.Background(), MountSpec{Repository: "damaged", Name: "img"})
	wantRefusal(t, mnt, err, ErrImageRefused, "the repository's name for it")
}

// TestVerityNotice: under "try", a store without fs-verity gets a mount
// without verity=require, and the reply says so; the reply has the
// image's digest, and an expected digest is checked.
func TestVerityNotice(t *testing.T) {
	s := startService(t, nil)
	mnt, rep, err := client(t, s).Mount(context.Background(), MountSpec{Repository: "test", Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	mnt.Close()
	t.Logf("notices: %q", rep.Notices)
	if len(rep.Digest) != 64 {
		t.Errorf("digest %q: want 64 hex digits", rep.Digest)
	}
	// The expected digest, given, is checked.
	mnt, _, err = client(t, s).Mount(context.Background(), MountSpec{Repository: "test", Name: "app", ExpectedDigest: rep.Digest})
	if err != nil {
		t.Fatalf("with its own digest expected: %v", err)
	}
	mnt.Close()
	mnt, _, err = client(t, s).Mount(context.Background(), MountSpec{Repository: "test", Name: "app", ExpectedDigest: strings.Repeat("0", 64)})
	wantRefusal(t, mnt, err, ErrImageRefused, "not the expected")
	f, err := os.Open(getFixture(t).objects)
	must(t, err)
	defer f.Close()
	var sfs unix.Statfs_t
	must(t, unix.Fstatfs(int(f.Fd()), &sfs))
	if sfs.Type == unix.TMPFS_MAGIC && !strings.Contains(strings.Join(rep.Notices, "\n"), "verity") {
		t.Errorf("a store on tmpfs has no fs-verity, and the reply does not say so: %q", rep.Notices)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrivateObjectRefused: an image a caller passes may not take content
// from an object others can't read (the overlay reads it with the
// service's credentials); the administrator's repository image may.
func TestPrivateObjectRefused(t *testing.T) {
	f := getFixture(t)
	s := startService(t, nil)
	root, err := image.ReadFile(f.image, image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := root.Lookup("size-0065536")
	if n == nil || n.Payload == "" {
		t.Fatal("no external file size-0065536 in the image")
	}
	obj := filepath.Join(f.objects, n.Payload)
	must(t, os.Chmod(obj, 0o600))
	defer os.Chmod(obj, 0o644)

	mnt, err := mountFile(t, s, f.image)
	wantRefusal(t, mnt, err, ErrImageRefused, "/size-0065536", "not readable by others")
	mnt, _, err = client(t, s).Mount(context.Background(), MountSpec{Repository: "test", Name: "app"})
	if err != nil {
		t.Fatalf("the repository's image: %v", err)
	}
	mnt.Close()
}

// rawRequest sends msg with files to the service on socket, and returns
// its reply (up to the end of the first message), or nothing when the
// service closes the connection.
func rawRequest(t *testing.T, socket string, msg []byte, files ...*os.File) []byte {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = rights(fds)
	}
	if _, _, err := c.WriteMsgUnix(msg, oob, nil); err != nil {
		return nil // the service may close first
	}
	// The reply, up to its end, or nothing when the service closes.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			return b
		}
	}
}

// hostileDescriptors passes descriptors of the wrong types: a pipe's ends
// and a directory as the image, an image as the user namespace.
func hostileDescriptors(t *testing.T, s *service) {
	f := getFixture(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	dir, err := os.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, bad := range []*os.File{pr, pw, dir} {
		mnt, _, err := client(t, s).Mount(context.Background(), MountSpec{Image: bad})
		wantRefusal(t, mnt, err, ErrImageRefused)
	}
	img, err := os.Open(f.image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	mnt, _, err := client(t, s).Mount(context.Background(), MountSpec{Image: img, UserNS: img})
	wantRefusal(t, mnt, err, ErrBadRequest, "not a user namespace")
}

// TestRequestTimeout: a request that outlasts the policy's timeout is
// refused saying so, and the mount made for it meanwhile is closed.
func TestRequestTimeout(t *testing.T) {
	s := startService(t, nil)
	before := resources(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	mnt, _, err := s.mountTimed(ctx, &unix.Ucred{Uid: 0}, &Request{Repository: "test", Image: "app"}, nil)
	wantRefusal(t, mnt, err, ErrLimitReached, "longer than", "timeout")
	s.work.Wait() // the mount, made after all, is closed
	checkNoLeaks(t, before)
}

// TestWorkBound: requests given up on for taking too long still count
// against the caller's maxConcurrent until they end.
func TestWorkBound(t *testing.T) {
	s := startService(t, func(p *Policy) { p.Limits.MaxConcurrent = 1 })
	must(t, s.startWork(4321))
	wantRefusal(t, nil, s.startWork(4321), ErrLimitReached, "requests being worked on")
	must(t, s.startWork(4322)) // another caller's own share
	s.endWork(4321)
	must(t, s.startWork(4321))
	s.endWork(4321)
	s.endWork(4322)
}
