//go:build linux

package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// NewUserNS creates a user namespace with the given uid and gid mappings
// and returns it opened (/proc/PID/ns/user of a child process made for the
// purpose, which is gone when NewUserNS returns); the test's cleanup closes
// it. Creating one with mappings to IDs other than one's own needs root.
func NewUserNS(t testing.TB, uids, gids []IDMap) *os.File {
	t.Helper()
	conv := func(ms []IDMap) []syscall.SysProcIDMap {
		var r []syscall.SysProcIDMap
		for _, m := range ms {
			r = append(r, syscall.SysProcIDMap{ContainerID: int(m.Inside), HostID: int(m.Outside), Size: int(m.Size)})
		}
		return r
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("cannot make a user namespace: %v", err)
	}
	cmd := exec.Command(sleep, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: conv(uids),
		GidMappings: conv(gids),
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a process in a new user namespace: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "ns", "user"))
	if err != nil {
		t.Fatalf("opening the user namespace: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Mounts returns the mounts of the calling process's mount namespace, from
// /proc/self/mountinfo.
func Mounts(t testing.TB) []MountInfo {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("reading the mount table: %v", err)
	}
	defer f.Close()
	var res []MountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(fields) < sep+4 {
			continue
		}
		res = append(res, MountInfo{
			MountPoint: unescapeMountinfo(fields[4]),
			Options:    fields[5],
			FSType:     fields[sep+1],
			Source:     unescapeMountinfo(fields[sep+2]),
			SuperOpts:  fields[sep+3],
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the mount table: %v", err)
	}
	return res
}

// MountAt returns the topmost mount on path (which must be clean and
// absolute), or nil when nothing is mounted there.
func MountAt(t testing.TB, path string) *MountInfo {
	t.Helper()
	var found *MountInfo
	for _, m := range Mounts(t) {
		if m.MountPoint == path {
			found = &m
		}
	}
	return found
}

// IsMountPoint tells whether something is mounted on path (clean and
// absolute).
func IsMountPoint(t testing.TB, path string) bool {
	t.Helper()
	return MountAt(t, path) != nil
}

// unescapeMountinfo undoes the octal escapes (\040 and the like) of
// mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsMentioning counts the mounts whose mount point, source or options
// contain one of paths: the mounts a test made from its own files, which
// other tests running at the same time (in other packages) never make.
// Compare it before and after an operation to find a mount left behind.
func MountsMentioning(t testing.TB, paths ...string) int {
	t.Helper()
	n := 0
	for _, m := range Mounts(t) {
		for _, p := range paths {
			if strings.Contains(m.MountPoint, p) || strings.Contains(m.Source, p) || strings.Contains(m.SuperOpts, p) {
				n++
				break
			}
		}
	}
	return n
}
