// Command gocfs builds, inspects, verifies and mounts composefs images.
//
// Invoked through a link named mkcomposefs, composefs-info, composefs-dump or
// mount.composefs it behaves as the upstream tool of that name; otherwise the
// same tools are its subcommands ("gocfs mkcomposefs ARGS"), beside gocfs's
// own commands. Every command is a thin layer over the library packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sort"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/internal/hugepages"
)

// personalities maps a program name to the constructor of its command. Each
// file of this package registers its commands in an init function.
var personalities = map[string]func() *cobra.Command{}

// subcommands are gocfs-only commands.
var subcommands []func() *cobra.Command

// argRewrites adjust gocfs's own command line (os.Args) before parsing, for
// forms cobra can't express (such as cfsctl's "gocfs --repo PATH COMMAND").
var argRewrites []func(args []string) []string

func registerPersonality(name string, mk func() *cobra.Command) { personalities[name] = mk }
func registerArgRewrite(f func(args []string) []string)         { argRewrites = append(argRewrites, f) }
func registerCommand(mk func() *cobra.Command)                  { subcommands = append(subcommands, mk) }

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// exitCode wraps err so that the process exits with code; a nil err exits
// silently.
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "gocfs",
		Short:         "Build, inspect, verify and mount composefs images",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	names := make([]string, 0, len(personalities))
	for n := range personalities {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		root.AddCommand(personalities[n]())
	}
	for _, mk := range subcommands {
		root.AddCommand(mk())
	}
	setVersion(root)
	return root
}

// rewriteArgs applies the argument rewrites to gocfs's command line; for
// cobra's completion requests ("gocfs __complete ARGS…", which the shell
// scripts make) to ARGS, so that they are completed as they would run.
func rewriteArgs(args []string) []string {
	if len(args) > 1 && (args[1] == cobra.ShellCompRequestCmd || args[1] == cobra.ShellCompNoDescRequestCmd) {
		rest := rewriteArgs(append([]string{args[0]}, args[2:]...))
		return append([]string{args[0], args[1]}, rest[1:]...)
	}
	for _, f := range argRewrites {
		args = f(args)
	}
	return args
}

func main() {
	prog := filepath.Base(os.Args[0])
	var cmd *cobra.Command
	args := os.Args
	if mk, ok := personalities[prog]; ok {
		cmd = mk()
		cmd.SilenceUsage = true
		cmd.SilenceErrors = true
	} else {
		args = rewriteArgs(os.Args)
		cmd = rootCommand()
		prog = "gocfs"
	}
	cmd.SetArgs(args[1:])
	if c, _, err := cmd.Find(args[1:]); err == nil && slices.Contains(bigHeapCommands, c.CommandPath()) {
		hugepages.AdviseHeap(bigHeap)
	}
	code := run(prog, cmd)
	os.Exit(code)
}

// bigHeapCommands build or pull a whole tree, with a heap that grows
// once to its largest, and exit: the first bigHeap bytes of their heap
// are advised for huge pages (internal/hugepages). On the 2-core VM of
// bench/RESULTS.md, alternately against the same code without it: a
// cached `mkcomposefs /usr` 0.96-1.17 s against 1.21 s, a cold one
// 3.67-4.20 s against 4.25-4.71 s (CPU 7.0 against 7.9 s), a cold pull of
// the 1000 MB image 3.71-4.06 s against 3.78-4.30 s, peak RSS 1-5 MB
// higher. Advising 256 MB did no better and raised the cached build's
// peak RSS to 185-193 MB. Servers (mountd, FUSE, the snapshotter) are
// not among them: their heaps shrink and grow.
var bigHeapCommands = []string{
	"mkcomposefs", "gocfs mkcomposefs",
	"gocfs oci pull", "gocfs oci import-layer", "gocfs oci copy",
	"gocfs repo create-image", "gocfs repo compute-id", "gocfs repo create-dumpfile",
	"gocfs repo import-image",
}

const bigHeap = 128 << 20

func run(prog string, cmd *cobra.Command) int {
	// GOCFS_CPUPROFILE=FILE writes a CPU profile, for performance work.
	if p := os.Getenv("GOCFS_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	// GOCFS_TRACE=FILE writes an execution trace (go tool trace FILE).
	if p := os.Getenv("GOCFS_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if trace.Start(f) == nil {
				defer trace.Stop()
			}
		}
	}
	err := cmd.Execute()
	if p := os.Getenv("GOCFS_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", prog, ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	return 1
}
