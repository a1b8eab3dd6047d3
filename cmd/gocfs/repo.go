package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gocfs/gocfs/repo"
)

func init() {
	registerCommand(newRepoCmd)
	registerArgRewrite(routeRepoArgs)
}

// repoFlags are the options every repository command takes: cfsctl's
// global options, and gocfs's --json and --threads.
type repoFlags struct {
	path    string
	json    bool
	threads int

	user, system            bool
	hash, erofsVersion      string
	insecure, requireVerity bool
	noUpgrade, noRepo       bool
}

// cfsctlVerbs are the repository commands that "gocfs VERB" (no global
// option first) runs as "gocfs repo VERB", as cfsctl's are: those that are
// not gocfs commands of their own (mount is).
var cfsctlVerbs = map[string]bool{
	"cat": true, "compute-id": true, "compute-karg": true, "create-dumpfile": true, "create-image": true,
	"dump-files": true, "fsck": true, "gc": true, "image-objects": true, "images": true,
	"import-image": true, "init": true, "list-images": true, "tag": true, "transaction": true,
	"untag": true,
}

// routeRepoArgs makes cfsctl's command lines gocfs's: "gocfs --repo PATH
// COMMAND …" (or any of cfsctl's global options first) means "gocfs repo
// --repo PATH COMMAND …", and "gocfs images" (a cfsctl command that is no
// gocfs command) "gocfs repo images". The repository commands live under
// "repo", where the global options are flags, and some of their names
// (mount) are also top-level gocfs commands.
func routeRepoArgs(args []string) []string {
	if len(args) < 2 {
		return args
	}
	if ok, _ := isGlobalFlag(args[1]); ok || cfsctlVerbs[args[1]] {
		return append([]string{args[0], "repo"}, args[1:]...)
	}
	return args
}

func newRepoCmd() *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "repo [--repo PATH|--user|--system] COMMAND",
		Short: "Manage a composefs repository: an object store with images and references (as cfsctl)",
		Long: `Manage a composefs repository, laid out as composefs-rs's cfsctl does: objects
named by fs-verity digest under objects/, images (themselves objects) linked
under images/, named references under images/refs/. Imports are atomic and
crash-safe, several may run at once, and gc never removes what a reference, a
--root or an import in progress needs. The commands and their options are
cfsctl's (composefs-rs 0.9), with gocfs's additions: "gocfs --repo PATH
COMMAND" is the same as "gocfs repo --repo PATH COMMAND", as is "gocfs
COMMAND" for the commands gocfs has no other meaning for.

Without --repo, --user or --system, the repository is cfsctl's default:
` + systemRepo + ` as root, else ~/.var/lib/composefs.

IMAGE and NAME arguments name an image by reference (NAME or refs/NAME) or by
its hex digest. See docs/repository.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	setVersion(cmd)
	addGlobalFlags(cmd.PersistentFlags(), &rf)
	cmd.AddCommand(
		newRepoInitCmd(&rf), newRepoCreateImageCmd(&rf), newRepoImportImageCmd(&rf),
		newRepoMountCmd(&rf), newRepoImagesCmd(&rf), newRepoImageObjectsCmd(&rf),
		newRepoTagCmd(&rf), newRepoUntagCmd(&rf), newRepoGCCmd(&rf), newRepoFsckCmd(&rf),
		newRepoCatCmd(&rf), newRepoComputeIDCmd(&rf), newRepoCreateDumpfileCmd(&rf),
		newRepoDumpFilesCmd(&rf), newRepoTransactionCmd(&rf), newRepoComputeKargCmd(&rf),
	)
	return cmd
}

func (rf *repoFlags) options(cmd *cobra.Command) repo.Options {
	stderr := cmd.ErrOrStderr()
	return repo.Options{
		Threads:  rf.threads,
		Progress: progressBars(stderr),
		Notice:   func(msg string) { fmt.Fprintf(stderr, "gocfs: %s\n", msg) },
	}
}

// open opens the repository the global options name, and checks what
// they require of it.
func (rf *repoFlags) open(cmd *cobra.Command) (*repo.Repo, error) {
	if rf.noRepo {
		return nil, fmt.Errorf("--no-repo is only supported for compute-id and create-dumpfile, not %s", cmd.Name())
	}
	path, err := rf.repoPath()
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(path, rf.options(cmd))
	if err != nil {
		return nil, err
	}
	if err := rf.checkOpened(r); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
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
	var hash, algorithm, erofsVersion string
	var insecure, ensure bool
	cmd := &cobra.Command{
		Use:   "init [--hash sha256|sha512] [--erofs-version 0|1] [--ensure] [PATH]",
		Short: "Create a repository (meta.json, objects/, images/refs/)",
		Long: `Create a repository, or check that the one there uses the same digest
algorithm. SHA-512 (fsverity-sha512-12, the default, as cfsctl init's)
names objects and images by SHA-512 fs-verity digests (see
docs/repository.md); SHA-256 is what upstream composefs images carry and
mount.composefs checks.
fs-verity is enabled on meta.json where the file system supports it, which
makes composefs-rs and gocfs require it on every object; --insecure does not.
--erofs-version 1, the default as in cfsctl init, makes composefs-rs's V1
images (mkcomposefs --min-version=1: composefs_version always 1) and records
it in meta.json (v1_erofs); 0 makes mkcomposefs's default images. --ensure
opens a repository already there as it is, whatever its configuration, as
cfsctl init --ensure.
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
			ev, err := repo.ParseErofsVersion(erofsVersion)
			if err != nil {
				return err
			}
			var r *repo.Repo
			if ensure {
				r, _ = repo.Open(path, rf.options(cmd)) // as it is, if there
			}
			if r == nil {
				r, err = repo.Init(path, repo.InitOptions{Algorithm: alg, ErofsVersion: ev, Insecure: insecure}, rf.options(cmd))
			}
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
	cmd.Flags().StringVar(&hash, "hash", "sha512", "fs-verity digest algorithm: sha256 or sha512")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "the algorithm as cfsctl init takes it: fsverity-sha256-12 or fsverity-sha512-12")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "do not enable fs-verity on meta.json (objects then need not have it)")
	cmd.Flags().StringVar(&erofsVersion, "erofs-version", "1", "EROFS format of the repository's images: 0 (mkcomposefs's) or 1 (composefs-rs's V1)")
	cmd.Flags().BoolVar(&ensure, "ensure", false, "open a repository already there as it is, whatever its configuration")
	return cmd
}

// run opens the repository and calls fn with it and a context that
// SIGINT and SIGTERM cancel, closing the repository afterwards: the frame
// of every command that works on an open repository.
func (rf *repoFlags) run(cmd *cobra.Command, fn func(ctx context.Context, r *repo.Repo) error) error {
	r, err := rf.open(cmd)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := interruptible()
	defer cancel()
	return fn(ctx, r)
}
