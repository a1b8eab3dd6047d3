//go:build linux

package testutil

import (
	"testing"

	"github.com/gocfs/gocfs/internal/treecmp"
)

// CompareTrees reports through t.Errorf every difference between the trees
// at want and got, attribute by attribute, as DiffTrees finds them.
func CompareTrees(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	diffs, err := DiffTrees(want, got, opts)
	for _, d := range diffs {
		t.Errorf("trees differ: %s", d)
	}
	if err != nil {
		t.Errorf("comparing %s and %s: %v", want, got, err)
	}
}

// DiffTrees returns the differences between the trees at want and got (see
// treecmp.Diff).
func DiffTrees(want, got string, opts CompareOptions) ([]string, error) {
	return treecmp.Diff(want, got, opts)
}
