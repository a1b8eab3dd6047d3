package main

// cfsctl's command line: its global options (on "gocfs repo", where
// "gocfs --repo PATH …" and the other global options lead), how a
// repository is found and opened from them, and --version.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/repo"
)

func init() {
	registerArgRewrite(joinFuseValue)
}

// version is the program's version, set at build time with
// -ldflags "-X main.version=…" (make build does); otherwise the module's
// version from the build information.
var version string

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// setVersion gives cmd cfsctl's -V/--version, printing "gocfs VERSION".
func setVersion(cmd *cobra.Command) {
	cmd.Version = versionString()
	cmd.Flags().BoolP("version", "V", false, "print the version")
	cmd.SetVersionTemplate("gocfs {{.Version}}\n")
}

// The default repositories, as cfsctl's --system and --user name them.
const systemRepo = "/sysroot/composefs"

func userRepo() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the user repository: %w", err)
	}
	return filepath.Join(home, ".var/lib/composefs"), nil
}

// globalFlags are cfsctl's global options that take a value, and those
// that take none: a command line starting with one of them is cfsctl's
// form, routed to "gocfs repo".
var (
	globalValueFlags = []string{"--repo", "--hash", "--erofs-version", "--threads"}
	globalBoolFlags  = []string{"--user", "--system", "--insecure", "--require-verity", "--no-upgrade", "--no-repo", "--json"}
)

// isGlobalFlag reports whether arg is one of cfsctl's global options, and
// whether the next argument is its value.
func isGlobalFlag(arg string) (ok, takesNext bool) {
	for _, f := range globalValueFlags {
		if arg == f {
			return true, true
		}
		if strings.HasPrefix(arg, f+"=") {
			return true, false
		}
	}
	for _, f := range globalBoolFlags {
		if arg == f || strings.HasPrefix(arg, f+"=") {
			return true, false
		}
	}
	return false, false
}

// addGlobalFlags adds cfsctl's global options (and gocfs's --json and
// --threads) to fs.
func addGlobalFlags(fs *pflag.FlagSet, rf *repoFlags) {
	fs.StringVar(&rf.path, "repo", "", "operate on the repository at `PATH`")
	fs.BoolVar(&rf.user, "user", false, "operate on the user's repository, $HOME/.var/lib/composefs")
	fs.BoolVar(&rf.system, "system", false, "operate on the system repository, "+systemRepo)
	fs.StringVar(&rf.hash, "hash", "", "the digest `ALGORITHM`, sha256 or sha512 (default: the repository's, from meta.json; else sha512)")
	fs.StringVar(&rf.erofsVersion, "erofs-version", "", "the image format `VERSION`: 0 (mkcomposefs's default format) or 1 (composefs_version 1, as mkcomposefs --min-version=1; the default)")
	fs.BoolVar(&rf.insecure, "insecure", false, "accepted for cfsctl compatibility (deprecated there); gocfs ignores it")
	fs.BoolVar(&rf.requireVerity, "require-verity", false, "refuse a repository that does not require fs-verity (meta.json without it)")
	fs.BoolVar(&rf.noUpgrade, "no-upgrade", false, "refuse a repository without meta.json instead of telling its algorithm from its objects")
	fs.BoolVar(&rf.noRepo, "no-repo", false, "open no repository (compute-id and create-dumpfile only)")
	fs.BoolVar(&rf.json, "json", false, "print results as JSON")
	fs.IntVar(&rf.threads, "threads", 0, "parallel workers for hashing and copying (default: the number of CPUs)")
	fs.MarkHidden("insecure")
}

// repoPath is the repository directory: --repo, --system or --user, else
// cfsctl's default (the system repository as root, else the user's).
func (rf *repoFlags) repoPath() (string, error) {
	n := 0
	for _, set := range []bool{rf.path != "", rf.user, rf.system} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return "", errors.New("give one of --repo, --user and --system")
	case rf.path != "":
		return rf.path, nil
	case rf.system:
		return systemRepo, nil
	case rf.user || os.Geteuid() != 0:
		return userRepo()
	}
	return systemRepo, nil
}

// hashAlgorithm parses --hash; 0 when not given.
func (rf *repoFlags) hashAlgorithm() (fsverity.Algorithm, error) {
	switch rf.hash {
	case "":
		return 0, nil
	case "sha256":
		return fsverity.SHA256, nil
	case "sha512":
		return fsverity.SHA512, nil
	}
	return 0, fmt.Errorf("--hash %q: want sha256 or sha512", rf.hash)
}

// imageOptions are the image format --erofs-version selects; without it,
// cfsctl's default, version 1 (mkcomposefs --min-version=1).
func (rf *repoFlags) imageOptions() (image.Options, error) {
	switch rf.erofsVersion {
	case "", "1":
		return image.Options{MinVersion: 1, MaxVersion: 1}, nil
	case "0":
		return image.DefaultOptions, nil
	case "2":
		return image.Options{}, errors.New("--erofs-version 2 (composefs-rs's legacy format: extended inodes, depth-first order) is not supported by gocfs; use 0 or 1")
	}
	return image.Options{}, fmt.Errorf("--erofs-version %q: want 0 or 1", rf.erofsVersion)
}

// checkOpened applies the global options that concern an opened
// repository: --hash must be its algorithm, --require-verity and
// --no-upgrade refuse what they say.
func (rf *repoFlags) checkOpened(r *repo.Repo) error {
	alg, err := rf.hashAlgorithm()
	if err != nil {
		return err
	}
	if alg != 0 && alg != r.Algorithm() {
		return fmt.Errorf("repository %s is configured for %s (from %s) but --hash %s was specified",
			r.Dir(), repo.AlgorithmName(r.Algorithm()), repo.MetaFile, rf.hash)
	}
	if rf.noUpgrade && !r.HasMeta() {
		return fmt.Errorf("%s not found in %s; this repository must be initialized with init (--no-upgrade)", repo.MetaFile, r.Dir())
	}
	if rf.requireVerity && !r.Secure() {
		return fmt.Errorf("repository %s does not have fs-verity enabled (--require-verity): its %s has none", r.Dir(), repo.MetaFile)
	}
	return nil
}

// algorithmNoRepo is the algorithm of compute-id and create-dumpfile,
// which open no repository to work: --hash, else the repository's (when
// there is one to read it from, and not --no-repo), else SHA-512, as
// cfsctl decides.
func (rf *repoFlags) algorithmNoRepo() (fsverity.Algorithm, error) {
	alg, err := rf.hashAlgorithm()
	if err != nil || alg != 0 {
		return alg, err
	}
	if !rf.noRepo {
		if path, err := rf.repoPath(); err == nil {
			if r, err := repo.Open(path, repo.Options{ReadOnly: true}); err == nil {
				defer r.Close()
				return r.Algorithm(), nil
			}
		}
	}
	return fsverity.SHA512, nil
}

// imageOptionsNoRepo is the image format of compute-id and create-dumpfile:
// --erofs-version's, else that of the repository's meta.json when there is
// one (not with --no-repo), so that compute-id prints what create-image
// would name the image; else V1. (cfsctl's compute-id takes V1 whatever
// the repository says.)
func (rf *repoFlags) imageOptionsNoRepo() (image.Options, error) {
	if rf.erofsVersion == "" && !rf.noRepo {
		if path, err := rf.repoPath(); err == nil {
			if r, err := repo.Open(path, repo.Options{ReadOnly: true}); err == nil {
				defer r.Close()
				return r.ImageOptions()
			}
		}
	}
	return rf.imageOptions()
}

// digestID formats an image or object digest as cfsctl prints object IDs:
// "sha256:HEX".
func digestID(alg fsverity.Algorithm, hex string) string { return alg.String() + ":" + hex }

// joinFuseValue joins cfsctl's "--fuse yes" (auto, no) into "--fuse=yes":
// gocfs's --fuse also stands alone ("--fuse" is "--fuse=yes"), so its
// value must be attached.
func joinFuseValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "--" {
			return append(out, args[i:]...)
		}
		if args[i] == "--fuse" && i+1 < len(args) {
			switch args[i+1] {
			case "auto", "yes", "no":
				out = append(out, "--fuse="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, args[i])
	}
	return out
}
