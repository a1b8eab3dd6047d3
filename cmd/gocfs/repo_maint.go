package main

// The repository commands that keep it in order: cfsctl's gc, fsck and
// transaction.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/repo"
)

func newRepoGCCmd(rf *repoFlags) *cobra.Command {
	var opts repo.GCOptions
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--root IMAGE]...",
		Short: "Remove the images no reference names, the objects no image needs, and leftovers",
		Long: `Remove every image that no reference (and no --root) names, every object that
no remaining image or live split stream refers to, and the temporary files of interrupted
operations, and print what was removed as cfsctl does ("Objects: N removed
(B bytes)", then the image and stream links pruned). With --dry-run nothing
is removed and the same report says what would be. gc waits for imports
under way, and they wait for it. Split streams are walked as composefs-rs
walks them (stream refs, object refs, named refs), so a repository shared
with composefs-rs keeps what either needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				res, err := r.GC(ctx, opts)
				if err != nil {
					return err
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "gocfs: warning: %s\n", w)
				}
				return rf.output(cmd, res, func(w io.Writer) { printGC(w, res) })
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.DryRun, "dry-run", "n", false, "preview what would be removed, removing nothing")
	cmd.Flags().StringArrayVarP(&opts.Roots, "root", "r", nil, "also keep this `IMAGE` (and its objects); may be repeated")
	completeImageFlag(cmd, rf, "root")
	return cmd
}

// printGC prints what gc removed in cfsctl's words, and the leftovers
// gocfs removed besides.
func printGC(w io.Writer, res *repo.GCResult) {
	if res.DryRun {
		fmt.Fprintln(w, "Dry run (no files deleted):")
	}
	fmt.Fprintf(w, "Objects: %d removed (%d bytes)\n", res.ObjectsRemoved, res.BytesRemoved)
	if len(res.ImagesRemoved) > 0 || len(res.StreamsPruned) > 0 {
		fmt.Fprintf(w, "Pruned symlinks: %d images, %d streams\n", len(res.ImagesRemoved), len(res.StreamsPruned))
	}
	if len(res.Leftovers) > 0 {
		fmt.Fprintf(w, "Leftovers: %d removed\n", len(res.Leftovers))
	}
}

// fsckReply is fsck's JSON: cfsctl's fields (its FsckReply), then
// gocfs's result.
type fsckReply struct {
	OK               bool     `json:"ok"`
	HasMetadata      bool     `json:"has_metadata"`
	ObjectsCorrupted int      `json:"objects_corrupted"`
	StreamsCorrupted int      `json:"streams_corrupted"`
	ImagesCorrupted  int      `json:"images_corrupted"`
	BrokenLinks      int      `json:"broken_links"`
	MissingObjects   int      `json:"missing_objects"`
	Errors           []string `json:"errors"`
	*repo.FsckResult
}

// newFsckReply counts res's problems as cfsctl does.
func newFsckReply(r *repo.Repo, res *repo.FsckResult) *fsckReply {
	f := &fsckReply{OK: res.OK(), HasMetadata: r.HasMeta(), Errors: []string{}, FsckResult: res}
	images := make(map[string]bool)
	for _, p := range res.Problems {
		f.Errors = append(f.Errors, fmt.Sprintf("fsck: %s: %s: %s", p.Kind, p.Path, p.Detail))
		switch p.Kind {
		case repo.KindObjectCorrupt, repo.KindObjectUnreadable, repo.KindObjectNoVerity:
			f.ObjectsCorrupted++
		case repo.KindObjectMissing:
			f.MissingObjects++
		case repo.KindImageCorrupt, repo.KindImageInvalid, repo.KindImageDamaged:
			images[p.Path] = true
		case repo.KindStreamDamaged, repo.KindStreamInvalid:
			f.StreamsCorrupted++
		case repo.KindBadLink, repo.KindRefDangling:
			f.BrokenLinks++
		}
	}
	f.ImagesCorrupted = len(images)
	return f
}

func newRepoFsckCmd(rf *repoFlags) *cobra.Command {
	var opts repo.FsckOptions
	cmd := &cobra.Command{
		Use:   "fsck [--metadata-only]",
		Short: "Check every object, image, reference and stream; exit 1 on any problem",
		Long: `Check every object's content against its digest (measured by the kernel where
fs-verity is enabled, else computed), that every image is a composefs image
whose objects are all there and intact, that every reference names an image
and that stream links resolve. The report is cfsctl's (meta.json, objects,
streams, images, status), each error with what gocfs knows of it: each bad
object with every image that uses it, each such image as damaged. Temporary
files of interrupted operations are listed too (gc removes them); they are
no problem. Exit status 1 on any problem; with --json, as cfsctl, 0 unless
the check itself fails ("ok" says).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				res, err := r.FsckWith(ctx, opts)
				if err != nil {
					return err
				}
				reply := newFsckReply(r, res)
				if err := rf.output(cmd, reply, func(w io.Writer) { printFsck(w, reply) }); err != nil {
					return err
				}
				if !res.OK() && !rf.json {
					return exitCode(1, fmt.Errorf("repository integrity check failed"))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&opts.MetadataOnly, "metadata-only", false, "skip checking the objects' content; check only links, references, images and streams (much faster)")
	return cmd
}

// printFsck prints f as cfsctl does, with gocfs's details of each error.
func printFsck(w io.Writer, f *fsckReply) {
	res := f.FsckResult
	meta := "absent"
	if f.HasMetadata {
		meta = "ok"
	}
	fmt.Fprintf(w, "meta.json: %s\n", meta)
	fmt.Fprintf(w, "objects: %d/%d ok\n", max(res.Objects-f.ObjectsCorrupted, 0), res.Objects)
	fmt.Fprintf(w, "streams: %d/%d ok\n", max(res.Streams-f.StreamsCorrupted, 0), res.Streams)
	fmt.Fprintf(w, "images: %d/%d ok\n", max(res.Images-f.ImagesCorrupted, 0), res.Images)
	if f.BrokenLinks > 0 {
		fmt.Fprintf(w, "broken symlinks: %d\n", f.BrokenLinks)
	}
	if f.MissingObjects > 0 {
		fmt.Fprintf(w, "missing objects: %d\n", f.MissingObjects)
	}
	if res.OK() {
		fmt.Fprintln(w, "status: ok")
	} else {
		fmt.Fprintf(w, "status: %d error(s)\n", len(res.Problems))
	}
	for i, p := range res.Problems {
		fmt.Fprintf(w, "  - %s\n", f.Errors[i])
		printProblemDetail(w, p)
	}
	for _, l := range res.Leftovers {
		fmt.Fprintf(w, "leftover: %s (gc removes it)\n", l)
	}
}

// printProblemDetail prints who uses a bad object, and what a damaged
// image or stream refers to.
func printProblemDetail(w io.Writer, p repo.Problem) {
	refs := func(r []string) string {
		if len(r) == 0 {
			return ""
		}
		return " (refs: " + strings.Join(r, ", ") + ")"
	}
	if len(p.Refs) > 0 {
		fmt.Fprintf(w, "      named by %s\n", strings.Join(p.Refs, ", "))
	}
	for _, u := range p.UsedBy {
		files := u.Files
		more := ""
		if len(files) > 3 {
			files, more = files[:3], fmt.Sprintf(" and %d more", len(files)-3)
		}
		fmt.Fprintf(w, "      used by image %s%s as %s%s\n", u.Image, refs(u.Refs), strings.Join(files, ", "), more)
	}
	for _, s := range p.Streams {
		fmt.Fprintf(w, "      used by split stream %s\n", s)
	}
	for _, o := range p.Objects {
		fmt.Fprintf(w, "      bad object %s\n", o)
	}
}

func newRepoTransactionCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "transaction",
		Short: "Hold the repository lock (shared) until interrupted, keeping gc away",
		Long: `Take the repository lock, shared, as an import does, and hold it until
interrupted (SIGINT, SIGTERM, SIGHUP): garbage collection waits meanwhile, so
objects written into the repository by other means are not collected before
an image refers to them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sigs)
			ctx, cancel := interruptible()
			defer cancel()
			unlock, err := r.Lock(ctx, false)
			if err != nil {
				return err
			}
			defer unlock()
			<-sigs
			return nil
		},
	}
}
