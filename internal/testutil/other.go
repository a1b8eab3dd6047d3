//go:build !linux

package testutil

import (
	"errors"
	"os"
	"runtime"
	"testing"
)

const notLinux = "needs Linux, not " + runtime.GOOS

// MakeSampleTree skips the test: sample trees need Linux.
func MakeSampleTree(t testing.TB, dir string, opts SampleOptions) {
	t.Helper()
	t.Skip("sample tree " + notLinux)
}

// CompareTrees skips the test: tree comparison needs Linux.
func CompareTrees(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	t.Skip("tree comparison " + notLinux)
}

// DiffTrees fails: tree comparison needs Linux.
func DiffTrees(want, got string, opts CompareOptions) ([]string, error) {
	return nil, errors.New("tree comparison " + notLinux)
}

// NewUserNS skips the test: user namespaces need Linux.
func NewUserNS(t testing.TB, uids, gids []IDMap) *os.File {
	t.Helper()
	t.Skip("user namespaces " + notLinux)
	return nil
}

// Mounts skips the test: the mount table is read from Linux's /proc.
func Mounts(t testing.TB) []MountInfo {
	t.Helper()
	t.Skip("mount table " + notLinux)
	return nil
}

// MountAt skips the test (see Mounts).
func MountAt(t testing.TB, path string) *MountInfo {
	t.Helper()
	Mounts(t)
	return nil
}

// IsMountPoint skips the test (see Mounts).
func IsMountPoint(t testing.TB, path string) bool {
	t.Helper()
	Mounts(t)
	return false
}

// MountsMentioning skips the test (see Mounts).
func MountsMentioning(t testing.TB, paths ...string) int {
	t.Helper()
	Mounts(t)
	return 0
}
