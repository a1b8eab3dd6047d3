package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/inspect"
	"github.com/gocfs/gocfs/tree"
)

func init() { registerPersonality("composefs-info", newComposefsInfoCmd) }

const infoUsageFmt = "usage: %s [--basedir=path] [ls|objects|dump|missing-objects|measure-file] IMAGES...\n"

func newComposefsInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "composefs-info [--basedir=DIR] [--filter=NAME]... ls|dump|objects|missing-objects|measure-file IMAGES...",
		Short: "Print information about composefs images",
		Long: `Print information about composefs images, byte for byte as upstream's
composefs-info does:

  ls               list the files, with symlink targets and object paths
  dump             print the images in composefs-dump(5) format
  objects          list the object-store files the images refer to, sorted
  missing-objects  the same, only those missing from --basedir
  measure-file     print the fs-verity digest of the given files (measured by
                   the kernel, else computed)

--filter=NAME (repeatable) keeps only the top-level entries called NAME.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runComposefsInfo(cmd.OutOrStdout(), cmd.ErrOrStderr(), personalityArgv0("composefs-info"), args)
		},
	}
}

// personalityArgv0 returns the name upstream would print as argv[0]: the
// program path when gocfs runs under that name, else the name itself.
func personalityArgv0(name string) string {
	if filepath.Base(os.Args[0]) == name {
		return os.Args[0]
	}
	return name
}

// infoOpts are composefs-info's parsed options.
type infoOpts struct {
	basedir    string
	hasBasedir bool
	filter     []string
	operands   []string
}

// parseInfoArgs parses args as glibc's getopt_long does for upstream's
// option table (--basedir=ARG, --filter=ARG, unambiguous abbreviations,
// permuted operands, "--"). It returns a message for stderr and, for a
// usage error, whether upstream would print "Def" and the usage.
func parseInfoArgs(argv0 string, args []string) (o infoOpts, errMsg string, usage bool) {
	long := []string{"basedir", "filter"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			o.operands = append(o.operands, args[i+1:]...)
			return o, "", false
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			var match []string
			for _, l := range long {
				if l == name {
					match = []string{l}
					break
				}
				if strings.HasPrefix(l, name) {
					match = append(match, l)
				}
			}
			switch len(match) {
			case 0:
				return o, fmt.Sprintf("%s: unrecognized option '%s'\n", argv0, a), true
			case 1:
			default:
				return o, fmt.Sprintf("%s: option '%s' is ambiguous; possibilities: '--basedir' '--filter'\n", argv0, a), true
			}
			if !hasVal {
				if i+1 >= len(args) {
					return o, fmt.Sprintf("%s: option '--%s' requires an argument\n", argv0, match[0]), true
				}
				i++
				val = args[i]
			}
			if match[0] == "basedir" {
				o.basedir, o.hasBasedir = val, true
				continue
			}
			if strings.Contains(val, "/") {
				return o, fmt.Sprintf("composefs-info: Filter must be a single name: %s: Success\n", val), false
			}
			o.filter = append(o.filter, val)
		case len(a) > 1 && a[0] == '-':
			return o, fmt.Sprintf("%s: invalid option -- '%c'\n", argv0, a[1]), true
		default:
			o.operands = append(o.operands, a)
		}
	}
	return o, "", false
}

func runComposefsInfo(stdout, stderr io.Writer, argv0 string, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--help" || a == "-h" {
			fmt.Fprintf(stdout, infoUsageFmt, argv0)
			return nil
		}
	}
	o, msg, usage := parseInfoArgs(argv0, args)
	if msg != "" {
		if usage {
			fmt.Fprint(stdout, "Def\n")
		}
		fmt.Fprint(stderr, msg)
		if usage {
			fmt.Fprintf(stderr, infoUsageFmt, argv0)
		}
		return exitCode(1, nil)
	}
	r := &infoRun{out: bufio.NewWriterSize(stdout, 64<<10), stderr: stderr, argv0: argv0, opts: o}
	defer r.out.Flush()
	if len(o.operands) == 0 {
		return r.usage("No command specified")
	}
	command, paths := o.operands[0], o.operands[1:]
	switch command {
	case "ls":
		return r.eachImage(paths, func(root *tree.Node) error { return inspect.WriteLs(r.out, root) })
	case "dump":
		return r.eachImage(paths, func(root *tree.Node) error { return dump.NewWriter(r.out).WriteTree(root) })
	case "objects", "missing-objects":
		return r.objects(paths, command == "missing-objects")
	case "measure-file":
		return r.measureFiles(paths)
	}
	r.out.Flush()
	fmt.Fprintf(stderr, "composefs-info: Unknown command '%s'\n\n", command)
	return exitCode(1, nil)
}

// infoRun is one composefs-info command line being run.
type infoRun struct {
	out    *bufio.Writer
	stderr io.Writer
	argv0  string
	opts   infoOpts
}

// usage prints msg and the usage, and fails.
func (r *infoRun) usage(msg string) error {
	r.out.Flush()
	fmt.Fprintf(r.stderr, "%s\n"+infoUsageFmt, msg, r.argv0)
	return exitCode(1, nil)
}

// fail prints an error as upstream's composefs-info does, and fails.
func (r *infoRun) fail(format string, a ...any) error {
	r.out.Flush()
	fmt.Fprintf(r.stderr, "composefs-info: "+format+"\n", a...)
	return exitCode(1, nil)
}

// eachImage checks --basedir (upstream opens it for every command but
// measure-file), then reads each image and hands it to fn, stopping at the
// first failure.
func (r *infoRun) eachImage(paths []string, fn func(root *tree.Node) error) error {
	if r.opts.hasBasedir {
		fd, err := unix.Open(r.opts.basedir, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY|unix.O_PATH, 0)
		if err != nil {
			return r.fail("Can't open basedir `%s`\n: %s", r.opts.basedir, strerror(err))
		}
		unix.Close(fd)
	}
	if len(paths) == 0 {
		return r.usage("No image path specified")
	}
	opts := image.ReadOptions{Filter: r.opts.filter}
	for _, p := range paths {
		root, err := loadImage(p, opts)
		if err != nil {
			var oe *openError
			if errors.As(err, &oe) {
				return r.fail("Failed to open '%s': %s", p, strerror(oe.err))
			}
			return r.fail("Failed to load '%s': %s", p, strerror(err))
		}
		if err := fn(root); err != nil {
			return r.fail("%v", err)
		}
	}
	return nil
}

// objects prints the objects the images refer to, sorted, or with missing
// those the store (--basedir) lacks: all of them without --basedir, as
// upstream, which then looks in file descriptor 0.
func (r *infoRun) objects(paths []string, missing bool) error {
	var objs inspect.Objects
	if err := r.eachImage(paths, func(root *tree.Node) error { objs.Add(root); return nil }); err != nil {
		return err
	}
	list := objs.List()
	if missing {
		var store fs.FS
		if r.opts.hasBasedir {
			store = os.DirFS(r.opts.basedir)
		}
		list = inspect.Missing(store, list)
	}
	for _, p := range list {
		fmt.Fprintf(r.out, "%s\n", p)
	}
	return r.out.Flush()
}

// measureFiles prints the SHA-256 fs-verity digest of each file: measured
// by the kernel when the file has fs-verity, computed otherwise.
func (r *infoRun) measureFiles(paths []string) error {
	if len(paths) == 0 {
		return r.usage("No files specified")
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return r.fail("Failed to open '%s': %s", p, strerror(err))
		}
		d, _, err := fsverity.MeasureOrCompute(f, fsverity.SHA256)
		f.Close()
		if err != nil {
			r.out.Flush()
			fmt.Fprintf(r.stderr, "failed to measure '%s': %s\n", p, strerror(err))
			return exitCode(1, nil)
		}
		fmt.Fprintf(r.out, "%s\n", fsverity.Hex(d))
	}
	return nil
}

// openError marks a failure to open a file, which upstream reports
// differently from a failure to read it.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// loadImage reads the image at path as upstream does: it must be a regular
// file (upstream mmaps it; anything else fails with ENODEV).
func loadImage(path string, opts image.ReadOptions) (*tree.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &openError{err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, syscall.ENODEV
	}
	return image.Read(f, st.Size(), opts)
}

// strerror returns the C library's message for the errno err carries, or
// the one upstream would get for our image errors.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s != "" {
			s = strings.ToUpper(s[:1]) + s[1:]
		}
		return s
	}
	switch {
	case errors.Is(err, image.ErrHeaderVersion), errors.Is(err, erofs.ErrUnsupported):
		return "Operation not supported"
	case errors.Is(err, tree.ErrExists):
		return "File exists"
	case errors.Is(err, tree.ErrNameTooLong):
		return "File name too long"
	case errors.Is(err, tree.ErrXattrName), errors.Is(err, tree.ErrXattrSpace):
		return "Numerical result out of range"
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	}
	return "Invalid argument"
}
