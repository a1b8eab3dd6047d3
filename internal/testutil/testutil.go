// Package testutil holds helpers shared by gocfs's tests: a sample source
// tree that exercises every kind of inode and attribute composefs keeps
// ([MakeSampleTree]), a comparison of two directory trees attribute by
// attribute ([CompareTrees], [DiffTrees]), building images with an
// mkcomposefs ([Mkcomposefs]), building the gocfs command ([GocfsBinary]),
// and, on Linux, user namespaces for idmapped mounts ([NewUserNS]) and
// mount table look-ups ([IsMountPoint]), and patching images into shapes
// no writer makes ([PatchXattr], [PatchDirent]).
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounting needs CAP_SYS_ADMIN); run the tests as root to include it")
	}
}
