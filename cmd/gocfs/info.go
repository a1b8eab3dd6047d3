package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/erofs"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
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
	if len(o.operands) == 0 {
		fmt.Fprintf(stderr, "No command specified\n"+infoUsageFmt, argv0)
		return exitCode(1, nil)
	}
	command, paths := o.operands[0], o.operands[1:]
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	fail := func(format string, a ...any) error {
		out.Flush()
		fmt.Fprintf(stderr, "composefs-info: "+format+"\n", a...)
		return exitCode(1, nil)
	}

	var handle func(root *tree.Node) error
	var objects map[string]bool
	switch command {
	case "ls":
		handle = func(root *tree.Node) error { return infoLs(out, root) }
	case "dump":
		handle = func(root *tree.Node) error { return dump.NewWriter(out).WriteTree(root) }
	case "objects", "missing-objects":
		objects = make(map[string]bool)
	case "measure-file":
		if len(paths) == 0 {
			fmt.Fprintf(stderr, "No files specified\n"+infoUsageFmt, argv0)
			return exitCode(1, nil)
		}
		for _, p := range paths {
			d, err := measureFile(p)
			if err != nil {
				var oe *openError
				if errors.As(err, &oe) {
					return fail("Failed to open '%s': %s", p, strerror(oe.err))
				}
				out.Flush()
				fmt.Fprintf(stderr, "failed to measure '%s': %s\n", p, strerror(err))
				return exitCode(1, nil)
			}
			fmt.Fprintf(out, "%s\n", fsverity.Hex(d))
		}
		return nil
	default:
		out.Flush()
		fmt.Fprintf(stderr, "composefs-info: Unknown command '%s'\n\n", command)
		return exitCode(1, nil)
	}

	basedirFd := 0 // upstream's unset global: missing-objects then looks in fd 0
	if o.hasBasedir {
		fd, err := unix.Open(o.basedir, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY|unix.O_PATH, 0)
		if err != nil {
			return fail("Can't open basedir `%s`\n: %s", o.basedir, strerror(err))
		}
		defer unix.Close(fd)
		basedirFd = fd
	}
	if len(paths) == 0 {
		fmt.Fprintf(stderr, "No image path specified\n"+infoUsageFmt, argv0)
		return exitCode(1, nil)
	}
	if objects != nil {
		fd := -1
		if command == "missing-objects" {
			fd = basedirFd
		}
		handle = func(root *tree.Node) error {
			collectObjects(root, objects, fd)
			return nil
		}
	}
	opts := image.ReadOptions{Filter: o.filter}
	for _, p := range paths {
		root, err := loadImage(p, opts)
		if err != nil {
			var oe *openError
			if errors.As(err, &oe) {
				return fail("Failed to open '%s': %s", p, strerror(oe.err))
			}
			return fail("Failed to load '%s': %s", p, strerror(err))
		}
		if err := handle(root); err != nil {
			return fail("%v", err)
		}
	}
	if objects != nil {
		list := make([]string, 0, len(objects))
		for k := range objects {
			list = append(list, k)
		}
		sort.Strings(list)
		for _, k := range list {
			fmt.Fprintf(out, "%s\n", k)
		}
	}
	return out.Flush()
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

// measureFile returns the SHA-256 fs-verity digest of the file at path:
// measured by the kernel when the file has fs-verity, computed otherwise,
// as upstream's lcfs_fd_get_fsverity does.
func measureFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &openError{err}
	}
	defer f.Close()
	alg, d, err := fsverity.Measure(f)
	if err == nil {
		if alg != fsverity.SHA256 {
			return nil, fmt.Errorf("file has a %v fs-verity digest, not sha256: %w", alg, syscall.EILSEQ)
		}
		return d, nil
	}
	if !errors.Is(err, fsverity.ErrNotEnabled) && !errors.Is(err, fsverity.ErrNotSupported) {
		return nil, err
	}
	return fsverity.Digest(f, fsverity.SHA256)
}

// infoLs prints the tree as "composefs-info ls" does.
func infoLs(w *bufio.Writer, root *tree.Node) error {
	var buf []byte
	var walk func(n *tree.Node, parent string)
	walk = func(n *tree.Node, parent string) {
		for _, c := range n.Children {
			p := parent + "/" + c.Name
			buf = dump.AppendEscapedLs(buf[:0], []byte(p))
			switch c.Mode & tree.ModeType {
			case tree.ModeDir:
				buf = append(buf, "/\t"...)
			case tree.ModeSymlink:
				buf = append(buf, "\t-> "...)
				buf = dump.AppendEscaped(buf, []byte(c.Payload))
			case tree.ModeRegular:
				if c.Payload != "" {
					buf = append(buf, "\t@ "...)
					buf = dump.AppendEscaped(buf, []byte(c.Payload))
				}
			}
			buf = append(buf, '\n')
			w.Write(buf)
			walk(c, p)
		}
	}
	walk(root, "")
	return nil
}

// collectObjects adds the object paths of the regular files under n to
// set: all of them when fd is -1, else those fstatat(fd, ...) can't find
// (relative to fd, leading slashes removed, symlinks followed).
func collectObjects(n *tree.Node, set map[string]bool, fd int) {
	var walk func(n *tree.Node)
	walk = func(n *tree.Node) {
		if n.Mode&tree.ModeType == tree.ModeRegular && n.Payload != "" && !set[n.Payload] {
			missing := true
			if fd >= 0 {
				var st unix.Stat_t
				missing = unix.Fstatat(fd, strings.TrimLeft(n.Payload, "/"), &st, unix.AT_EMPTY_PATH) != nil
			}
			if missing {
				set[n.Payload] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(n)
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
