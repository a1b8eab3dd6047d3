package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/internal/testutil"
	"github.com/gocfs/gocfs/mountd"
)

// mountdSetup builds an image in a directory others can read, starts
// "gocfs mountd" on a socket there with a policy allowing uid 65534, and
// returns the directory, the gocfs binary copy, the image, the store and
// the socket. With activated, the socket is made here and passed to the
// service as systemd does (LISTEN_FDS, LISTEN_PID, descriptor 3).
func mountdSetup(t *testing.T, activated bool) (dir, bin, img, store, sock string) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("setpriv (util-linux) not installed: %v", err)
	}
	dir, err := os.MkdirTemp("", "gocfs-mountd-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(testutil.GocfsBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "gocfs")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	testutil.MakeSampleTree(t, src, testutil.SampleOptions{})
	img, store = filepath.Join(dir, "app.cfs"), filepath.Join(dir, "objects")
	os.Mkdir(store, 0o755)
	testutil.Mkcomposefs(t, src, img, store)
	os.Chmod(img, 0o644)
	p, _ := json.Marshal(mountd.Policy{Stores: []mountd.Place{{Name: "objects", Path: store}}, Users: []string{"65534"}})
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, p, 0o644); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "mountd.socket")
	srv := exec.Command(bin, "mountd", "--policy", policy, "--socket", sock)
	if activated {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false) // the service holds it on
		defer l.Close()
		os.Chmod(sock, 0o666)
		lf, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		// systemd sets LISTEN_PID to the service's pid; sh's exec keeps
		// its own. --socket names another path, which must stay unused.
		srv = exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, bin, "mountd", "--policy", policy, "--socket", sock+".unused")
		srv.ExtraFiles = []*os.File{lf}
	}
	var log bytes.Buffer
	srv.Stderr = &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
		t.Logf("gocfs mountd:\n%s", log.Bytes())
	})
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Mkdir(filepath.Join(dir, "mnt"), 0o777)
	return dir, bin, img, store, sock
}

// TestMountThroughMountd: "gocfs mount" run by an ordinary user gets a
// kernel mount from gocfs mountd, runs the command given with it, and
// says so.
func TestMountThroughMountd(t *testing.T) {
	for _, activated := range []bool{false, true} {
		t.Run(map[bool]string{false: "listening", true: "socket-activated"}[activated], func(t *testing.T) {
			testMountThroughMountd(t, activated)
		})
	}
}

func testMountThroughMountd(t *testing.T, activated bool) {
	dir, bin, img, store, sock := mountdSetup(t, activated)
	mnt := filepath.Join(dir, "mnt")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "mount", img, mnt, "--basedir", store, "--mountd", sock, "--", "cat", filepath.Join(mnt, "size-0000100"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gocfs mount: %v\n%s", err, stderr.Bytes())
	}
	want, err := os.ReadFile(filepath.Join(dir, "src", "size-0000100"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("read through the mount %d bytes, want the source's %d", len(out), len(want))
	}
	if !strings.Contains(stderr.String(), "with the kernel through gocfs mountd") {
		t.Errorf("gocfs mount did not say it used gocfs mountd:\n%s", stderr.Bytes())
	}
	if testutil.IsMountPoint(t, mnt) {
		t.Errorf("the mount shows outside the user's namespace")
	}
	if _, err := os.Stat(sock + ".unused"); activated && err == nil {
		t.Errorf("the socket-activated service listened on --socket too")
	}
}

// TestMountMountdRefusedFallsBack: a user the service refuses gets a FUSE
// mount, and is told why and which.
func TestMountMountdRefusedFallsBack(t *testing.T) {
	dir, bin, img, store, sock := mountdSetup(t, false)
	mnt := filepath.Join(dir, "mnt")
	cmd := exec.Command("setpriv", "--reuid=65533", "--regid=65533", "--clear-groups",
		bin, "mount", img, mnt, "--basedir", store, "--mountd", sock, "--", "true")
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{"gocfs mountd did not mount", "not allowed by the policy", "serving the image with FUSE instead"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
