package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/internal/testutil"
)

// TestMain builds gocfs once for the tests that run the binary.
func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }

// Every command bigHeapCommands names exists (a renamed command would
// silently lose the advice).
func TestBigHeapCommandsExist(t *testing.T) {
	for _, path := range bigHeapCommands {
		words := strings.Fields(path)
		var c *cobra.Command
		var err error
		if mk, ok := personalities[words[0]]; ok {
			c = mk()
		} else {
			c, _, err = rootCommand().Find(words[1:])
		}
		if err != nil || c.CommandPath() != path {
			t.Errorf("%q: found %q (%v)", path, c.CommandPath(), err)
		}
	}
}
