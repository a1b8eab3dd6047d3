package oci

import (
	"context"
	"os"
	"testing"
)

func TestZZProfilePull(t *testing.T) {
	ref := os.Getenv("GOCFS_PROFILE_REF")
	if ref == "" {
		t.Skip()
	}
	r := newTestRepo(t)
	if _, err := Pull(context.Background(), r, ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
}
