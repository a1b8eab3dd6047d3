package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/scan"
	"github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
)

func init() { registerPersonality("mkcomposefs", newMkcomposefsCmd) }

type mkcfsFlags struct {
	digestStore     string
	digestCache     string
	useEpoch        bool
	skipDevices     bool
	skipXattrs      bool
	userXattrs      bool
	printDigest     bool
	printDigestOnly bool
	fromFile        bool
	minVersion      string
	maxVersion      string
	threads         string
	hardlinks       bool
}

func newMkcomposefsCmd() *cobra.Command {
	var f mkcfsFlags
	cmd := &cobra.Command{
		Use:   "mkcomposefs [OPTIONS] SOURCE IMAGE",
		Short: "Build a composefs image from a directory or a dump file",
		Long: `Build a composefs image from a directory or, with --from-file, from a
composefs-dump(5) file ("-" reads standard input). IMAGE "-" writes the image
to standard output. The image is byte-identical to upstream mkcomposefs's.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runMkcomposefs(cmd, &f, args) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.digestStore, "digest-store", "", "store content files in this directory")
	fl.StringVar(&f.digestCache, "digest-cache", "", "remember file digests in this file, and don't read files unchanged since (gocfs)")
	fl.BoolVar(&f.useEpoch, "use-epoch", false, "make all mtimes zero")
	fl.BoolVar(&f.skipDevices, "skip-devices", false, "don't store device nodes")
	fl.BoolVar(&f.skipXattrs, "skip-xattrs", false, "don't store file xattrs")
	fl.BoolVar(&f.userXattrs, "user-xattrs", false, "only store user.* xattrs")
	fl.BoolVar(&f.printDigest, "print-digest", false, "print the digest of the image")
	fl.BoolVar(&f.printDigestOnly, "print-digest-only", false, "print the digest of the image, don't write image")
	fl.BoolVar(&f.fromFile, "from-file", false, "the source is a dump file, not a directory")
	fl.StringVar(&f.minVersion, "min-version", "", "use this minimal format version (default 0)")
	fl.StringVar(&f.maxVersion, "max-version", "", "use this maximum format version (default 1)")
	fl.StringVar(&f.threads, "threads", "", fmt.Sprintf("number of threads used to compute digests and copy files (default %d)", runtime.NumCPU()))
	fl.BoolVar(&f.hardlinks, "preserve-hardlinks", false, "keep hard links between files of the source directory (upstream makes each link its own file)")
	return cmd
}

func parseVersion(s, what string) (int, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s == "" {
		return 0, fmt.Errorf("invalid %s version %s", what, s)
	}
	if v < 0 || v > image.MaxVersion {
		return 0, fmt.Errorf("unsupported %s version %d (this gocfs writes versions 0 to %d)", what, v, image.MaxVersion)
	}
	return int(v), nil
}

func runMkcomposefs(cmd *cobra.Command, f *mkcfsFlags, args []string) error {
	// The tree of a large source is most of the heap and lives until the
	// image is written: collect garbage sooner than Go's default so the
	// peak stays near the live size (GOGC in the environment overrides).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(40)
	}
	opts, threads, err := f.options(cmd)
	if err != nil {
		return exitCode(1, err)
	}
	src, out, err := f.paths(cmd, args)
	if err != nil {
		return err
	}
	var root *tree.Node
	if f.fromFile {
		root, err = readDumpFile(src)
	} else {
		root, err = scanSource(cmd, f, src, threads)
	}
	if err != nil {
		return exitCode(1, err)
	}
	digest, err := f.write(root, out, opts)
	if err != nil {
		return exitCode(1, fmt.Errorf("cannot write image: %w", err))
	}
	if f.printDigest {
		fmt.Fprintln(cmd.OutOrStdout(), fsverity.Hex(digest))
	}
	return nil
}

// options returns the image options and the thread count the flags say,
// checking the flags that go together.
func (f *mkcfsFlags) options(cmd *cobra.Command) (image.Options, int, error) {
	opts := image.DefaultOptions
	fl := cmd.Flags()
	if fl.Changed("min-version") || fl.Changed("max-version") {
		opts = image.Options{}
		var err error
		if fl.Changed("min-version") {
			if opts.MinVersion, err = parseVersion(f.minVersion, "min"); err != nil {
				return opts, 0, err
			}
		}
		if fl.Changed("max-version") {
			if opts.MaxVersion, err = parseVersion(f.maxVersion, "max"); err != nil {
				return opts, 0, err
			}
		}
	}
	threads := runtime.NumCPU()
	if fl.Changed("threads") {
		n, err := strconv.Atoi(f.threads)
		if err != nil || n <= 0 {
			return opts, 0, fmt.Errorf("invalid threads count %s", f.threads)
		}
		threads = n
	}
	if f.printDigestOnly {
		f.printDigest = true
	}
	if f.skipXattrs && f.userXattrs {
		return opts, 0, errors.New("--skip-xattrs and --user-xattrs can't be used together")
	}
	return opts, threads, nil
}

// paths returns the source and the image to write ("" with
// --print-digest-only), as upstream checks them.
func (f *mkcfsFlags) paths(cmd *cobra.Command, args []string) (src, out string, err error) {
	usage := func(msg string) error {
		fmt.Fprintln(os.Stderr, msg)
		fmt.Fprint(os.Stderr, cmd.UsageString())
		return exitCode(1, nil)
	}
	if len(args) < 1 {
		return "", "", usage("No source path specified")
	}
	if src = args[0]; src == "" {
		return "", "", exitCode(1, errors.New("empty source path specified"))
	}
	if len(args) > 2 {
		return "", "", usage("Too many arguments")
	}
	switch {
	case len(args) == 1 && !f.printDigestOnly:
		return "", "", usage("No destination path specified")
	case len(args) == 2 && f.printDigestOnly:
		return "", "", usage("Cannot specify destination path with --print-digest-only")
	case len(args) == 2:
		out = args[1]
	}
	if out == "-" && term.IsTerminal(int(os.Stdout.Fd())) {
		return "", "", exitCode(1, errors.New("stdout is a tty. Refusing to use it"))
	}
	return src, out, nil
}

// write writes root's image to out ("-": standard output; "": nowhere,
// --print-digest-only) and returns its digest.
func (f *mkcfsFlags) write(root *tree.Node, out string, opts image.Options) ([]byte, error) {
	switch {
	case f.printDigestOnly:
		return image.Digest(root, opts)
	case out == "-":
		h := fsverity.New(fsverity.SHA256)
		err := image.Write(io.MultiWriter(os.Stdout, h), root, opts)
		return h.Sum(nil), err
	}
	return image.WriteFile(out, root, opts)
}

// scanSource scans the directory src and, with --digest-store, stores
// each file as the scan reads it: named by the digest of what was stored,
// which the image then carries, so a file changing meanwhile can't leave
// an object whose content is not its name, nor an image naming another
// content.
func scanSource(cmd *cobra.Command, f *mkcfsFlags, src string, threads int) (*tree.Node, error) {
	sopts := scan.Options{
		SkipXattrs:        f.skipXattrs,
		UserXattrsOnly:    f.userXattrs,
		SkipDevices:       f.skipDevices,
		UseEpoch:          f.useEpoch,
		PreserveHardlinks: f.hardlinks,
		Threads:           threads,
	}
	if f.digestCache != "" {
		c, err := scan.OpenDigestCache(f.digestCache, fsverity.SHA256)
		if err != nil {
			return nil, err
		}
		if c.Discarded != "" {
			fmt.Fprintf(os.Stderr, "mkcomposefs: digest cache not used, rebuilt: %s\n", c.Discarded)
		}
		sopts.Cache = c
	}
	var root *tree.Node
	var err error
	if f.digestStore == "" {
		root, err = scan.DirContext(cmd.Context(), src, sopts)
	} else {
		root, err = scanIntoStore(cmd, f.digestStore, src, sopts, threads)
	}
	if err != nil {
		return nil, err
	}
	if sopts.Cache != nil {
		if err := sopts.Cache.Save(); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// scanIntoStore scans src storing each file into the store at dir.
func scanIntoStore(cmd *cobra.Command, dir, src string, sopts scan.Options, threads int) (*tree.Node, error) {
	st, err := store.Open(dir, store.Options{Create: true, Threads: threads})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	objects := st.NewWriter(nil)
	defer objects.Abort()
	sopts.Store = func(f *os.File, size int64) (digest.Digest, error) {
		d, _, err := objects.PutFile(f, digest.Digest{}, size)
		return d, err
	}
	sopts.Stored = st.Has
	root, err := scan.DirContext(cmd.Context(), src, sopts)
	if err != nil {
		return nil, err
	}
	if err := objects.Sync(); err != nil {
		return nil, fmt.Errorf("cannot fill store: %w", err)
	}
	return root, nil
}

// readDumpFile parses a dump file ("-" for standard input); upstream's
// CFS_PARSE_STRICT environment variable selects strict parsing.
func readDumpFile(path string) (*tree.Node, error) {
	opts := dump.Options{FileName: path}
	_, opts.Strict = os.LookupEnv("CFS_PARSE_STRICT")
	var r io.Reader = os.Stdin
	if path == "-" {
		opts.FileName = "<stdin>"
	} else {
		fh, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		r = fh
	}
	return dump.Parse(r, opts)
}
