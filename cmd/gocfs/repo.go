package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/scan"
)

func init() {
	registerCommand(newRepoCmd)
	registerArgRewrite(routeRepoArgs)
}

// repoFlags are the options every repository command takes.
type repoFlags struct {
	path    string
	json    bool
	threads int
}

// routeRepoArgs makes "gocfs --repo PATH COMMAND …" (cfsctl's form) mean
// "gocfs repo --repo PATH COMMAND …": the repository commands live under
// "repo", where --repo is a flag, and some of their names (mount) are also
// top-level gocfs commands.
func routeRepoArgs(args []string) []string {
	if len(args) > 1 && (args[1] == "--repo" || strings.HasPrefix(args[1], "--repo=")) {
		return append([]string{args[0], "repo"}, args[1:]...)
	}
	return args
}

func newRepoCmd() *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "repo [--repo PATH] COMMAND",
		Short: "Manage a composefs repository: an object store with images and references (as cfsctl)",
		Long: `Manage a composefs repository, laid out as composefs-rs's cfsctl does: objects
named by fs-verity digest under objects/, images (themselves objects) linked
under images/, named references under images/refs/. Imports are atomic and
crash-safe, several may run at once, and gc never removes what a reference, a
--root or an import in progress needs. "gocfs --repo PATH COMMAND" is the same
as "gocfs repo --repo PATH COMMAND".

IMAGE and NAME arguments name an image by reference (NAME or refs/NAME) or by
its hex digest. See docs/repository.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&rf.path, "repo", "", "the repository `PATH` (default /sysroot/composefs as root, else ~/.var/lib/composefs, as cfsctl)")
	pf.BoolVar(&rf.json, "json", false, "print results as JSON")
	pf.IntVar(&rf.threads, "threads", 0, "parallel workers for hashing and copying (default: the number of CPUs)")
	cmd.AddCommand(
		newRepoInitCmd(&rf), newRepoCreateImageCmd(&rf), newRepoImportImageCmd(&rf),
		newRepoMountCmd(&rf), newRepoImagesCmd(&rf), newRepoImageObjectsCmd(&rf),
		newRepoTagCmd(&rf), newRepoUntagCmd(&rf), newRepoGCCmd(&rf), newRepoFsckCmd(&rf),
	)
	return cmd
}

// repoPath is the repository directory, cfsctl's default when not given.
func (rf *repoFlags) repoPath() (string, error) {
	if rf.path != "" {
		return rf.path, nil
	}
	if os.Geteuid() == 0 {
		return "/sysroot/composefs", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --repo given and no home directory for the default: %w", err)
	}
	return filepath.Join(home, ".var/lib/composefs"), nil
}

func (rf *repoFlags) options(cmd *cobra.Command) repo.Options {
	stderr := cmd.ErrOrStderr()
	return repo.Options{
		Threads:  rf.threads,
		Progress: progressBars(stderr),
		Notice:   func(msg string) { fmt.Fprintf(stderr, "gocfs: %s\n", msg) },
	}
}

func (rf *repoFlags) open(cmd *cobra.Command) (*repo.Repo, error) {
	path, err := rf.repoPath()
	if err != nil {
		return nil, err
	}
	return repo.Open(path, rf.options(cmd))
}

// output prints v as JSON with --json, else calls human.
func (rf *repoFlags) output(cmd *cobra.Command, v any, human func(w io.Writer)) error {
	w := cmd.OutOrStdout()
	if rf.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(w)
	return nil
}

// terminal returns w as a file when it is a terminal (where progress bars
// are drawn), else nil.
func terminal(w io.Writer) *os.File {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// progressBars returns a progress reporter drawing bars on w when w is a
// terminal, else nil.
func progressBars(w io.Writer) func(repo.Progress) {
	f := terminal(w)
	if f == nil {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(p repo.Progress) {
		if bar == nil {
			opts := []progressbar.Option{
				progressbar.OptionSetWriter(f),
				progressbar.OptionSetDescription(p.Phase),
				progressbar.OptionThrottle(100 * time.Millisecond),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionSetPredictTime(true),
			}
			if p.Bytes {
				opts = append(opts, progressbar.OptionShowBytes(true))
			} else {
				opts = append(opts, progressbar.OptionShowCount())
			}
			bar = progressbar.NewOptions64(p.Total, opts...)
			bar.RenderBlank() // starts the clock the rates are computed with
		}
		if p.Total != bar.GetMax64() && p.Total >= 0 {
			bar.ChangeMax64(p.Total)
		}
		bar.Set64(p.Done)
		if p.Finished {
			bar.Finish()
			bar = nil
		}
	}
}

// interruptible returns a context canceled by SIGINT or SIGTERM.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// refName accepts a reference as NAME or refs/NAME.
func refName(s string) string { return strings.TrimPrefix(s, "refs/") }

func newRepoInitCmd(rf *repoFlags) *cobra.Command {
	var hash, algorithm string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "init [--hash sha256|sha512] [PATH]",
		Short: "Create a repository (meta.json, objects/, images/refs/)",
		Long: `Create a repository, or check that the one there uses the same digest
algorithm. SHA-256 (the default) is what upstream composefs images carry and
mount.composefs checks; SHA-512 names objects and images by SHA-512 fs-verity
digests, and its images carry SHA-512 per-file digests (see
docs/repository.md).
fs-verity is enabled on meta.json where the file system supports it, which
makes composefs-rs and gocfs require it on every object; --insecure does not.
PATH, as with cfsctl, is the repository (instead of --repo).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if algorithm != "" {
				if cmd.Flags().Changed("hash") {
					return errors.New("give --hash or --algorithm, not both")
				}
				hash = algorithm
			}
			alg, err := repo.ParseAlgorithm(hash)
			if err != nil {
				return err
			}
			path, err := rf.repoPath()
			if len(args) == 1 {
				path, err = args[0], nil
			}
			if err != nil {
				return err
			}
			r, err := repo.Init(path, repo.InitOptions{Algorithm: alg, Insecure: insecure}, rf.options(cmd))
			if err != nil {
				return err
			}
			out := struct {
				Path      string `json:"path"`
				Algorithm string `json:"algorithm"`
				Secure    bool   `json:"secure"`
			}{r.Dir(), repo.AlgorithmName(r.Algorithm()), r.Secure()}
			return rf.output(cmd, out, func(w io.Writer) {
				fmt.Fprintf(w, "composefs repository at %s (%s)\n", out.Path, out.Algorithm)
			})
		},
	}
	cmd.Flags().StringVar(&hash, "hash", "sha256", "fs-verity digest algorithm: sha256 or sha512")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "the algorithm as cfsctl init takes it: fsverity-sha256-12 or fsverity-sha512-12")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "do not enable fs-verity on meta.json (objects then need not have it)")
	return cmd
}

func newRepoCreateImageCmd(rf *repoFlags) *cobra.Command {
	var so scan.Options
	cmd := &cobra.Command{
		Use:   "create-image SOURCE [NAME]",
		Short: "Store a directory (or a composefs-dump file) and its image, optionally as reference NAME",
		Long: `Store every file of the directory SOURCE as an object, then its image (the one
mkcomposefs makes of SOURCE), linked as images/DIGEST and, with NAME, as
images/refs/NAME. SOURCE may also be a composefs-dump(5) file ("-" for
standard input), whose files' objects must be in the repository already.
Prints the image's digest.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = refName(args[1])
			}
			ctx, cancel := interruptible()
			defer cancel()
			opts := repo.CreateOptions{Scan: so}
			var res *repo.ImportResult
			src := args[0]
			if fi, err := os.Stat(src); err == nil && fi.IsDir() {
				res, err = r.CreateImage(ctx, src, name, opts)
				if err != nil {
					return err
				}
			} else {
				in := io.Reader(os.Stdin)
				if src != "-" {
					f, err := os.Open(src)
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				if res, err = r.CreateImageFromDump(ctx, in, name, opts); err != nil {
					return err
				}
			}
			return rf.output(cmd, res, func(w io.Writer) { fmt.Fprintln(w, res.Image) })
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&so.UseEpoch, "use-epoch", false, "make all mtimes zero")
	fl.BoolVar(&so.SkipDevices, "skip-devices", false, "don't store device nodes")
	fl.BoolVar(&so.SkipXattrs, "skip-xattrs", false, "don't store file xattrs")
	fl.BoolVar(&so.UserXattrsOnly, "user-xattrs", false, "only store user.* xattrs")
	fl.BoolVar(&so.PreserveHardlinks, "preserve-hardlinks", false, "keep hard links between files (as composefs-rs does)")
	return cmd
}

func newRepoImportImageCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import-image NAME < IMAGE",
		Short: "Store a composefs image read from standard input as reference NAME",
		Long: `Read a composefs image from standard input, check that it is one and that
the repository has every object it refers to (listing those it lacks), then
store it and point reference NAME at it. Prints the image's digest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return errors.New("import-image reads the image from standard input, which is a terminal")
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			res, err := r.ImportImage(ctx, in, refName(args[0]))
			if err != nil {
				return err
			}
			return rf.output(cmd, res, func(w io.Writer) { fmt.Fprintln(w, res.Image) })
		},
	}
}

func newRepoMountCmd(rf *repoFlags) *cobra.Command {
	var mf repoMountFlags
	cmd := &cobra.Command{
		Use:   "mount IMAGE MOUNTPOINT",
		Short: "Mount an image of the repository",
		Long: `Mount an image of the repository on MOUNTPOINT, with the object store as
basedir. The image's digest is checked as mount.composefs's digest= option
does. Unmount with "gocfs umount".`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := mf.options(cmd)
			if err != nil {
				return err
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			return runMounted(cmd, &mf.policy, args[0], args[1], opts, func(o mount.Options) (*mounter.Mounted, error) {
				return r.Mount(args[0], args[1], o)
			})
		},
	}
	mf.addFlags(cmd)
	return cmd
}

// repoMountFlags are the flags of the repository's and OCI's mount
// commands.
type repoMountFlags struct {
	verity string
	policy policyFlags
}

func (mf *repoMountFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&mf.verity, "verity", "try", "fs-verity checks of the objects: off, try or require")
	addPolicyFlags(cmd, &mf.policy)
}

// options returns the mount options the flags say.
func (mf *repoMountFlags) options(cmd *cobra.Command) (mount.Options, error) {
	mode, err := mount.ParseVerityMode(mf.verity)
	if err != nil {
		return mount.Options{}, fmt.Errorf("--verity: %w", err)
	}
	opts := mount.Options{Verity: mode}
	mf.policy.apply(cmd, &opts)
	return opts, nil
}

func newRepoImagesCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "List the images and the references to them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			images, err := r.Images()
			if err != nil {
				return err
			}
			return rf.output(cmd, images, func(w io.Writer) {
				for _, im := range images {
					size := "missing"
					if im.Size >= 0 {
						size = fmt.Sprint(im.Size)
					}
					fmt.Fprintf(w, "%s %9s %s\n", im.Digest, size, strings.Join(im.Refs, " "))
				}
			})
		},
	}
}

func newRepoImageObjectsCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "image-objects IMAGE",
		Short: "List the digests of the objects an image refers to",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			objs, err := r.ImageObjects(args[0])
			if err != nil {
				return err
			}
			return rf.output(cmd, objs, func(w io.Writer) {
				for _, o := range objs {
					fmt.Fprintln(w, o)
				}
			})
		},
	}
}

func newRepoTagCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "tag NAME IMAGE",
		Short: "Point reference NAME at an image",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			name := refName(args[0])
			if err := r.Tag(name, args[1]); err != nil {
				return err
			}
			d, err := r.ResolveRef(name)
			if err != nil {
				return err
			}
			ref := repo.Ref{Name: name, Image: d.Hex()}
			return rf.output(cmd, ref, func(io.Writer) {})
		},
	}
}

func newRepoUntagCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "untag NAME",
		Short: "Remove reference NAME (gc then removes what only it kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			return r.Untag(refName(args[0]))
		},
	}
}

func newRepoGCCmd(rf *repoFlags) *cobra.Command {
	var opts repo.GCOptions
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--root IMAGE]...",
		Short: "Remove the images no reference names, the objects no image needs, and leftovers",
		Long: `Remove every image that no reference (and no --root) names, every object that
no remaining image refers to, and the temporary files of interrupted
operations. gc waits for imports under way, and they wait for it. A
repository holding composefs-rs split streams (streams/) is refused: use
cfsctl gc there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			res, err := r.GC(ctx, opts)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "gocfs: warning: %s\n", w)
			}
			return rf.output(cmd, res, func(w io.Writer) {
				verb := "removed"
				if res.DryRun {
					verb = "would remove"
				}
				fmt.Fprintf(w, "%s %d image(s), %d object(s) (%d bytes) and %d leftover file(s); kept %d image(s), %d object(s)\n",
					verb, len(res.ImagesRemoved), res.ObjectsRemoved, res.BytesRemoved, len(res.Leftovers), res.ImagesKept, res.ObjectsKept)
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.DryRun, "dry-run", "n", false, "only say what would be removed")
	cmd.Flags().StringArrayVar(&opts.Roots, "root", nil, "also keep this `IMAGE` (and its objects); may be repeated")
	return cmd
}

func newRepoFsckCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck",
		Short: "Check every object, image and reference; exit 1 on any problem",
		Long: `Check every object's content against its digest (measured by the kernel where
fs-verity is enabled, else computed), that every image is a composefs image
whose objects are all there and intact, and that every reference names an
image. Each bad object is reported with every image that uses it, and each
such image as damaged. Temporary files of interrupted operations are listed
too (gc removes them); they are no problem. Exit status 1 on any problem.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			res, err := r.Fsck(ctx)
			if err != nil {
				return err
			}
			if err := rf.output(cmd, res, func(w io.Writer) { printFsck(w, res) }); err != nil {
				return err
			}
			if !res.OK() {
				if rf.json {
					return exitCode(1, nil)
				}
				return exitCode(1, fmt.Errorf("fsck: %d problem(s) found", len(res.Problems)))
			}
			return nil
		},
	}
}

func printFsck(w io.Writer, res *repo.FsckResult) {
	refs := func(r []string) string {
		if len(r) == 0 {
			return ""
		}
		return " (refs: " + strings.Join(r, ", ") + ")"
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "%s: %s%s: %s\n", p.Kind, p.Path, refs(p.Refs), p.Detail)
		for _, u := range p.UsedBy {
			files := u.Files
			more := ""
			if len(files) > 3 {
				files, more = files[:3], fmt.Sprintf(" and %d more", len(files)-3)
			}
			fmt.Fprintf(w, "  used by image %s%s as %s%s\n", u.Image, refs(u.Refs), strings.Join(files, ", "), more)
		}
		for _, s := range p.Streams {
			fmt.Fprintf(w, "  used by split stream %s\n", s)
		}
		for _, o := range p.Objects {
			fmt.Fprintf(w, "  bad object %s\n", o)
		}
	}
	for _, l := range res.Leftovers {
		fmt.Fprintf(w, "leftover: %s (gc removes it)\n", l)
	}
	fmt.Fprintf(w, "checked %d object(s) (%d bytes, %d measured by the kernel), %d image(s), %d reference(s): %d problem(s)\n",
		res.Objects, res.Bytes, res.KernelVerified, res.Images, res.Refs, len(res.Problems))
}
