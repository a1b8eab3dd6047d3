package main

import (
	"bufio"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocfs/gocfs/internal/testutil"
)

// A gocfs process waiting for the repository lock that another process
// holds says what it waits for (not "garbage collection": here flock(1)
// holds it) and exits at once on SIGINT or SIGTERM, however long the
// holder keeps it.
func TestLockWaitInterruptible(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1) to hold the lock with")
	}
	bin := testutil.GocfsBinary(t)
	dir := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command(bin, "--repo", dir, "init", "--insecure").CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	for _, tc := range []struct {
		hold, cmd string // flock's lock mode, the gocfs command
		sig       syscall.Signal
		want      string
	}{
		{"--exclusive", "fsck", syscall.SIGINT, "waiting for another process holding the repository lock"},
		{"--shared", "gc", syscall.SIGTERM, "waiting for other processes holding the repository lock"},
		{"--exclusive", "create-image", syscall.SIGINT, "waiting for another process holding the repository lock"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			holder := exec.Command(flock, tc.hold, dir, "sleep", "60")
			if err := holder.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { holder.Process.Kill(); holder.Wait() }()
			time.Sleep(200 * time.Millisecond) // flock(1) has the lock
			args := []string{"--repo", dir, tc.cmd}
			if tc.cmd == "create-image" {
				args = append(args, "--no-propagate-usr-to-root", t.TempDir(), "x")
			}
			waiter := exec.Command(bin, args...)
			stderr, err := waiter.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := waiter.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			var msg string
			for sc.Scan() {
				if msg = sc.Text(); strings.Contains(msg, "waiting") {
					break
				}
			}
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "garbage") {
				t.Errorf("waiting message %q, want %q and no garbage collection", msg, tc.want)
			}
			start := time.Now()
			waiter.Process.Signal(tc.sig)
			done := make(chan error, 1)
			go func() {
				for sc.Scan() {
				}
				done <- waiter.Wait()
			}()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Errorf("the waiting gocfs exited with %v, want an error", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("the waiting gocfs took %v to exit", d)
				}
			case <-time.After(10 * time.Second):
				waiter.Process.Kill()
				t.Fatal("the waiting gocfs did not exit within 10s of the signal")
			}
		})
	}
}
