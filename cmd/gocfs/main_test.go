package main

import (
	"os"
	"testing"

	"github.com/gocfs/gocfs/internal/testutil"
)

// TestMain builds gocfs once for the tests that run the binary.
func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
