package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/internal/atomicfile"
	"github.com/gocfs/gocfs/internal/umask"
)

func init() { registerPersonality("composefs-dump", newComposefsDumpCmd) }

func newComposefsDumpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "composefs-dump SRC DEST",
		Short: "Read a composefs image and write it again",
		Long: `Read the composefs image SRC and write it to DEST again, with the format
version recorded in SRC. DEST is replaced atomically: on failure it is left
as it was.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runComposefsDump(cmd.ErrOrStderr(), personalityArgv0("composefs-dump"), args)
		},
	}
}

func runComposefsDump(stderr io.Writer, argv0 string, args []string) error {
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "%s\nusage: %s SRC DEST\n", msg, argv0)
		return exitCode(1, nil)
	}
	fail := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "composefs-dump: "+format+"\n", a...)
		return exitCode(1, nil)
	}
	if len(args) < 1 {
		return usage("No source path specified")
	}
	if len(args) < 2 {
		return usage("No destination path specified")
	}
	src, dst := args[0], args[1]
	f, err := os.Open(src)
	if err != nil {
		return fail("Failed to open '%s': %s", src, strerror(err))
	}
	defer f.Close()
	version, err := image.ReadVersion(f)
	if err != nil {
		return fail("Failed to get image version '%s': %s", src, strerror(err))
	}
	st, err := f.Stat()
	if err != nil {
		return fail("Failed to load '%s': %s", src, strerror(err))
	}
	if !st.Mode().IsRegular() {
		return fail("Failed to load '%s': %s", src, strerror(unix.ENODEV))
	}
	root, err := image.Read(f, st.Size(), image.ReadOptions{})
	if err != nil {
		return fail("Failed to load '%s': %s", src, strerror(err))
	}
	opts := image.Options{MinVersion: version, MaxVersion: version}
	write := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := image.Write(bw, root, opts); err != nil {
			return err
		}
		return bw.Flush()
	}
	var oe *openError
	if err := writeReplacing(dst, write); errors.As(err, &oe) {
		return fail("failed to open '%s': %s", dst, strerror(oe.err))
	} else if err != nil {
		return fail("cannot write file: %s", strerror(err))
	}
	return nil
}

// writeReplacing writes a new content for path through write. A regular
// file (or a path that doesn't exist yet) is replaced atomically (package
// atomicfile): nothing is left behind on failure. Symlinks are followed.
// Other files (devices, FIFOs) are written in place, as fopen(path, "w")
// would. Failures to create the output are returned as *openError.
func writeReplacing(path string, write func(io.Writer) error) error {
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved
	}
	mode := os.FileMode(0o666 &^ umask.Get())
	if st, err := os.Stat(target); err == nil {
		if !st.Mode().IsRegular() {
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
			if err != nil {
				return &openError{err}
			}
			if err := write(f); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		mode = st.Mode().Perm()
	}
	err := atomicfile.Write(target, mode, write)
	var ce *atomicfile.CreateError
	if errors.As(err, &ce) {
		return &openError{ce.Err}
	}
	return err
}
