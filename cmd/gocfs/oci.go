package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/dump"
	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/rootfs"
	"github.com/gocfs/gocfs/tree"
)

func init() {
	registerCommand(newOCICmd)
	registerArgRewrite(routeOCIArgs)
}

// routeOCIArgs makes "gocfs --repo PATH oci …" (and "gocfs repo --repo
// PATH oci …", what routeRepoArgs makes of it, whichever rewrite runs
// first) mean "gocfs oci --repo PATH …": the OCI commands live under
// "oci", which takes the repository flags.
func routeOCIArgs(args []string) []string {
	i := 1
	if len(args) > 1 && args[1] == "repo" {
		i = 2
	}
	start := i
	for i < len(args) {
		ok, takesNext := isGlobalFlag(args[i])
		if !ok {
			break
		}
		i++
		if takesNext && i < len(args) {
			i++
		}
	}
	if start == 1 && i == 1 || i >= len(args) || args[i] != "oci" {
		return args
	}
	out := append([]string{args[0], "oci"}, args[start:i]...)
	return append(out, args[i+1:]...)
}

func newOCICmd() *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "oci [--repo PATH|--user|--system] COMMAND",
		Short: "Pull OCI images into a repository, and mount them",
		Long: `Pull OCI container images into a composefs repository and mount them.
Layers are streamed into the object store (nothing is unpacked to disk) and
kept as split streams that give back each layer's tar archive byte for byte;
the merged layers become a composefs image named after the image. "gocfs
--repo PATH oci COMMAND" is the same as "gocfs oci --repo PATH COMMAND".
An image NAME is a tag, or, as in cfsctl, @sha256:DIGEST: the image of that
manifest digest, or of that configuration digest (tagged or not; oci mount
also takes the bare manifest digest sha256:DIGEST). See docs/oci.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	// cfsctl's global options, as for the repository commands.
	addGlobalFlags(cmd.PersistentFlags(), &rf)
	cmd.AddCommand(newOCIPullCmd(&rf), newOCIImagesCmd(&rf), newOCIInspectCmd(&rf),
		newOCIMountCmd(&rf), newOCILayerCmd(&rf), newOCIRmCmd(&rf),
		newOCITagCmd(&rf), newOCIUntagCmd(&rf), newOCIDumpCmd(&rf),
		newOCIComputeIDCmd(&rf), newOCIImportLayerCmd(&rf),
		newOCIFsckCmd(&rf), newOCICopyCmd(&rf), newOCIPrepareBootCmd(&rf),
		newOCISealCmd(&rf), newOCISignCmd(&rf))
	return cmd
}

func newOCIPullCmd(rf *repoFlags) *cobra.Command {
	var opts oci.PullOptions
	var retries int
	var localFetch, expected string
	var bootable bool
	var vf sealFlags
	cmd := &cobra.Command{
		Use:   "pull [--bootable [--expected-digest HEX]] SOURCE [NAME]",
		Short: "Pull an OCI image into the repository",
		Long: `Pull the OCI image SOURCE into the repository and name it NAME (images/refs/NAME
for its composefs image, streams/refs/oci/NAME, "/" as %2F, for its manifest,
as composefs-rs names it). SOURCE is a
registry reference ("registry.example/repo:tag", "docker://" optional;
credentials from the docker configuration), "oci:DIR[:TAG]" (an OCI image
layout) or "docker-archive:FILE[:REF]" (a docker save archive). NAME defaults
to the full registry reference, the layout's TAG or the archive's tag. Layers
the repository has already are not read again, so an interrupted pull goes
on where it stopped. Every manifest, index, configuration and layer is
checked against the digest that names it. A registry's layers are downloaded
into the repository's tmp/ and imported as they come, several at once; an
import that waits for the registry more than a second gives the repository
lock up until its download is complete: a stalled registry never holds
garbage collection up. Of a zstd:chunked layer only the files the repository
lacks are fetched (HTTP range requests), and the layer is rebuilt and
checked. Prints the composefs image's digest. With --bootable, also store the
image's bootable variant (as compute-id --bootable computes it) linked to it
by the named reference composefs.image.boot.v1 of its configuration's stream,
as cfsctl oci pull --bootable does, and print "Boot image: DIGEST". With
--expected-digest, look instead for the xattr rules and EROFS version whose
bootable image has that digest, as cfsctl does (those linked already, then
each --xattrs mode's V1 image; gocfs does not write composefs-rs's V2), link
it, and fail when none has.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkLocalFetch(localFetch, args[0]); err != nil {
				return err
			}
			if expected != "" && !bootable {
				return fmt.Errorf("--expected-digest requires --bootable")
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			var want digest.Digest
			if expected != "" {
				if want, err = r.ParseDigest(expected); err != nil {
					return fmt.Errorf("--expected-digest: %w", err)
				}
			}
			if len(args) == 2 {
				opts.Name = refName(args[1])
			}
			opts.Progress = layerBars(cmd.ErrOrStderr())
			if opts.Retries = retries; retries == 0 {
				opts.Retries = -1
			}
			ctx, cancel := interruptible()
			defer cancel()
			res, err := pullVerified(ctx, r, args[0], opts, &vf)
			if err != nil {
				return err
			}
			if !bootable {
				return rf.output(cmd, res, func(w io.Writer) { fmt.Fprintln(w, res.Image) })
			}
			boot, err := pullBootable(ctx, r, "@"+res.ManifestDigest, want)
			if err != nil {
				return err
			}
			out := struct {
				*oci.PullResult
				BootImage string `json:"boot_image"`
			}{res, boot}
			return rf.output(cmd, out, func(w io.Writer) { fmt.Fprintf(w, "%s\nBoot image: %s\n", res.Image, boot) })
		},
	}
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "the platform to pick from a multi-platform image (OS/ARCH[/VARIANT]; default linux and this machine's)")
	cmd.Flags().BoolVar(&opts.Insecure, "insecure", false, "allow plain HTTP to the registry (always allowed to localhost)")
	cmd.Flags().DurationVar(&opts.IdleTimeout, "idle-timeout", oci.DefaultIdleTimeout, "give a registry request up when the registry sends nothing for this long")
	cmd.Flags().IntVar(&retries, "retries", oci.DefaultRetries, "how many times a registry request that failed (network errors, stalls, 408, 429, 5xx) is tried again")
	cmd.Flags().BoolVar(&bootable, "bootable", false, "also store and link the image's bootable variant (composefs.image.boot.v1)")
	cmd.Flags().StringVar(&expected, "expected-digest", "", "with --bootable: find the xattr rules and EROFS version whose bootable image has this `HEX` digest, or fail")
	cmd.Flags().StringVar(&localFetch, "local-fetch", "disabled", "cfsctl's native containers-storage import: disabled, auto or zerocopy (gocfs has no containers-storage: transport; only disabled applies)")
	vf.add(cmd)
	cmd.Flags().Var(byteSize{&opts.MaxBytes}, "max-size", "the most the pull may write: the layers uncompressed, and each download (e.g. 20G; none: no limit; default: the space free on the repository's file system)")
	return cmd
}

// pullBootable makes and links the bootable image of the pulled image
// name (pull --bootable), or, with want, finds the one of that digest
// (--expected-digest), and returns its digest (hex).
func pullBootable(ctx context.Context, r *repo.Repo, name string, want digest.Digest) (string, error) {
	if want.IsZero() {
		d, err := oci.GenerateBootImage(ctx, r, name)
		return d.Hex(), err
	}
	m, err := oci.FindMatchingBootImage(ctx, r, name, want)
	if err != nil {
		return "", err
	}
	if !m.Found {
		return "", fmt.Errorf("no boot image configuration matched expected digest %s (tried %d mode/version combinations)", want.Hex(), m.Tried)
	}
	return m.Digest.Hex(), nil
}

// checkLocalFetch checks cfsctl's oci pull --local-fetch: its values are
// cfsctl's (LocalFetchCli), and, as in cfsctl, they only concern
// containers-storage: sources, which gocfs can't read; for the others
// they change nothing.
func checkLocalFetch(v, source string) error {
	switch v {
	case "disabled", "auto", "zerocopy":
	default:
		return fmt.Errorf("--local-fetch %q: want disabled, auto or zerocopy", v)
	}
	if strings.HasPrefix(source, "containers-storage:") {
		return fmt.Errorf("%s: gocfs has no containers-storage: transport (push the image to an OCI layout or a registry: skopeo copy containers-storage:… oci:DIR)", source)
	}
	return nil
}

// layerBars returns a progress reporter for oci pull when w is a
// terminal (else nil): a status line with the layer being downloaded and
// the layer being imported (the latest reports of each: layers download one
// after the other and import as they download, several at once), and a
// line for each layer done.
func layerBars(w io.Writer) func(oci.Progress) {
	f := terminal(w)
	if f == nil {
		return nil
	}
	var fetch, imp *oci.Progress
	var last time.Time
	draw := func() {
		var parts []string
		for _, p := range []*oci.Progress{fetch, imp} {
			if p == nil {
				continue
			}
			verb := "importing"
			if p.Fetching {
				verb = "downloading"
			}
			parts = append(parts, fmt.Sprintf("%s layer %d/%d %s %s/%s", verb, p.Layer+1, p.Layers,
				shortDigest(p.Digest), humanBytes(p.Done), humanBytes(p.Total)))
		}
		fmt.Fprintf(f, "\r\033[K%s", strings.Join(parts, " · "))
	}
	done := func(p oci.Progress, what string) {
		fmt.Fprintf(f, "\r\033[Klayer %d/%d %s: %s\n", p.Layer+1, p.Layers, shortDigest(p.Digest), what)
	}
	return func(p oci.Progress) {
		switch {
		case p.Stored:
			done(p, "stored already")
		case p.Fetching && p.Finished:
			fetch = nil
		case p.Fetching:
			fetch = &p
		case p.Finished:
			imp = nil
			done(p, humanBytes(p.Total)+" imported")
		default:
			imp = &p
		}
		if now := time.Now(); p.Finished || p.Stored || now.Sub(last) >= 100*time.Millisecond {
			last = now
			draw()
		}
	}
}

// byteSize is a size flag: a number of bytes with an optional K, M, G or
// T suffix (powers of 1024), or "none".
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	switch {
	case b.n == nil || *b.n == 0:
		return ""
	case *b.n < 0:
		return "none"
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Type() string { return "SIZE" }

func (b byteSize) Set(s string) error {
	if s == "none" {
		*b.n = -1
		return nil
	}
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	shift := 0
	if k := len(num); k > 0 {
		if i := strings.IndexByte("KMGT", num[k-1]); i >= 0 {
			shift, num = 10*(i+1), num[:k-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt64>>shift {
		return fmt.Errorf("%q is not a size (bytes, or a number with K, M, G or T, or none)", s)
	}
	*b.n = v << shift
	return nil
}

// shortDigest shortens "sha256:HEX" for display.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

func newOCIImagesCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "List the OCI images of the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			infos, err := oci.Images(r)
			if err != nil {
				return err
			}
			return rf.output(cmd, infos, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tIMAGE\tLAYERS\tSIZE\tMANIFEST")
				for _, i := range infos {
					if i.Error != "" {
						fmt.Fprintf(tw, "%s\t(%s)\t\t\t\n", i.Name, i.Error)
						continue
					}
					img := i.Image
					if len(img) > 12 {
						img = img[:12]
					}
					if !i.ImagePresent {
						img += " (to rebuild)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", i.Name, img, i.Layers, humanBytes(i.Size), shortDigest(i.ManifestDigest))
				}
				tw.Flush()
			})
		},
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newOCIInspectCmd(rf *repoFlags) *cobra.Command {
	var manifest, config bool
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Describe an OCI image of the repository (JSON)",
		Long: `Print, as JSON, what the repository knows of the OCI image NAME: its manifest
digest, layers (digest, diff ID, split stream), composefs image, and the main
fields of its configuration. --manifest and --config print the manifest or
the configuration themselves, byte for byte.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifest && config {
				return errors.New("give --manifest or --config, not both")
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			name := refName(args[0])
			if manifest || config {
				m, c, _, err := oci.Manifest(r, name)
				if err != nil {
					return err
				}
				if config {
					m = c
				}
				_, err = cmd.OutOrStdout().Write(m)
				return err
			}
			in, err := oci.Inspect(r, name)
			if err != nil {
				return err
			}
			rf.json = true
			return rf.output(cmd, in, nil)
		},
	}
	cmd.Flags().BoolVar(&manifest, "manifest", false, "print the image manifest")
	cmd.Flags().BoolVar(&config, "config", false, "print the image configuration")
	return cmd
}

// ociMountName is the image oci mount names: as cfsctl oci mount, a bare
// manifest digest "sha256:HEX" is the image of that manifest ("@sha256:HEX"
// elsewhere).
func ociMountName(s string) string {
	if h, ok := strings.CutPrefix(s, "sha256:"); ok && len(h) == 64 && digest.IsHex(h, 64) {
		return "@" + s
	}
	return refName(s)
}

func newOCIMountCmd(rf *repoFlags) *cobra.Command {
	var mf repoMountFlags
	var vf sealFlags
	var source string
	var bootable bool
	cmd := &cobra.Command{
		Use:   "mount [--bootable] NAME MOUNTPOINT",
		Short: "Mount an OCI image of the repository",
		Long: `Mount the composefs image of the OCI image NAME on MOUNTPOINT, with the
repository's object store as basedir (building the image again from the
stored layers if garbage collection removed it). With --bootable, mount the
bootable image pull --bootable linked to it instead (cfsctl oci mount
--bootable). Unmount with "gocfs umount".`,
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
			ctx, cancel := interruptible()
			defer cancel()
			return runMounted(cmd, &mf.policy, args[0], args[1], opts, func(o mount.Options) (*mounter.Mounted, error) {
				if bootable {
					if vf.mode != "none" {
						return nil, fmt.Errorf("--bootable: --verify checks the plain image's sealed digest, not the bootable one's")
					}
					return oci.MountBootable(ctx, r, ociMountName(args[0]), args[1], o)
				}
				return mountVerified(ctx, r, ociMountName(args[0]), args[1], o, &vf, source)
			})
		},
	}
	mf.addFlags(cmd)
	vf.add(cmd)
	cmd.Flags().StringVar(&source, "source", "", "with --verify: the registry image whose composefs artifacts (referrers) to verify against")
	cmd.Flags().BoolVar(&bootable, "bootable", false, "mount the bootable image linked by pull --bootable")
	return cmd
}

func newOCILayerCmd(rf *repoFlags) *cobra.Command {
	var dumpfile, asJSON bool
	cmd := &cobra.Command{
		Use:   "layer [--dumpfile|--json] DIFFID > LAYER.tar",
		Short: "Write a stored layer's tar archive, byte for byte, to standard output",
		Long: `Write the layer whose diff ID (the SHA-256 of its uncompressed archive,
"sha256:HEX" or HEX) is DIFFID to standard output, as the uncompressed tar
archive it was, byte for byte; its SHA-256 is checked at the end. As cfsctl
oci layer: --dumpfile prints its members as composefs dump lines instead
(composefs-rs's layer dump: absolute paths, hard links as @120000 lines),
--json its size, member count and how it is split.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dumpfile && asJSON {
				return errors.New("give --dumpfile or --json, not both")
			}
			out := cmd.OutOrStdout()
			if f, ok := out.(*os.File); ok && !dumpfile && !asJSON && !rf.json && term.IsTerminal(int(f.Fd())) {
				return errors.New("layer writes a tar archive to standard output, which is a terminal")
			}
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			switch {
			case dumpfile:
				bw := bufio.NewWriter(out)
				if err := oci.WriteLayerDump(r, args[0], bw); err != nil {
					return err
				}
				return bw.Flush()
			case asJSON || rf.json:
				info, err := oci.Layer(r, args[0])
				if err != nil {
					return err
				}
				rf.json = true
				return rf.output(cmd, info, nil)
			}
			return oci.WriteLayer(r, args[0], out)
		},
	}
	cmd.Flags().BoolVar(&dumpfile, "dumpfile", false, "print the layer's members as composefs dump lines")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the layer's metadata as JSON")
	return cmd
}

func newOCIRmCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove an OCI image's names (gc then removes what nothing else needs)",
		Long: `Remove the OCI image NAME: its tag (streams/refs/oci/NAME, "/" as %2F) and, if it
names the same image, images/refs/NAME. Nothing else is removed until "gocfs
--repo PATH gc", which keeps what other images need.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			return oci.Remove(r, refName(args[0]))
		},
	}
}

func newOCITagCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "tag MANIFEST_DIGEST NAME",
		Short: "Tag a stored OCI image with a new name",
		Long: `Name the stored OCI image whose manifest digest is MANIFEST_DIGEST
(sha256:HEX, as "oci images" and "oci inspect" show it) NAME, as cfsctl oci
tag: streams/refs/oci/NAME ("/" as %2F) points at its manifest's stream. NAME
must not contain '@'. A tag already called NAME is moved.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			return oci.Tag(r, args[0], args[1])
		},
	}
}

func newOCIUntagCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "untag NAME",
		Short: "Remove a tag from an OCI image (gc then removes what nothing else needs)",
		Long: `Remove the tag NAME of an OCI image, as cfsctl oci untag; the same as
"oci rm NAME". What only that tag kept is removed by the next gc.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.open(cmd)
			if err != nil {
				return err
			}
			defer r.Close()
			return oci.Untag(r, args[0])
		},
	}
}

// ociRulesFlag adds cfsctl's --xattrs (OCIConfigFilesystemOptions) to an
// oci command that makes an image's root file system.
func ociRulesFlag(cmd *cobra.Command) func() (oci.Rules, error) {
	x := cmd.Flags().String("xattrs", rootfs.AllowlistOnly.String(), "which xattrs the files keep: allowlist-only (security.capability) or keep-user-xattrs (and user.*)")
	return func() (oci.Rules, error) {
		f, err := rootfs.ParseXattrFilter(*x)
		if err != nil {
			return oci.Rules{}, fmt.Errorf("--xattrs: %w", err)
		}
		return oci.Rules{Xattrs: f}, nil
	}
}

func newOCIDumpCmd(rf *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dump [--bootable] [--xattrs MODE] NAME",
		Short: "Print the root file system of a stored OCI image as a composefs dump file",
		Long: `Print the root file system of the OCI image NAME, merged from its stored
layers by composefs-rs's rules, as a composefs-dump(5) file, as "composefs-info
dump" prints its composefs image (cfsctl oci dump). With the default --xattrs
it is the image pull made (built again if it was removed). With --bootable, its
bootable variant (cfsctl oci dump --bootable: /boot and /sysroot emptied,
SELinux labels dropped).`,
		Args: cobra.ExactArgs(1),
	}
	rules := ociRulesFlag(cmd)
	bootable := cmd.Flags().Bool("bootable", false, "the image's bootable variant")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		rl, err := rules()
		if err != nil {
			return err
		}
		return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
			root, err := ociDumpTree(ctx, r, refName(args[0]), rl, *bootable)
			if err != nil {
				return err
			}
			return dump.NewWriter(cmd.OutOrStdout()).WriteTree(root)
		})
	}
	return cmd
}

// ociDumpTree is the tree oci dump prints: the stored image read back, or,
// for other rules than pull's, the image of the tree they make, made in
// memory and read back.
func ociDumpTree(ctx context.Context, r *repo.Repo, name string, rules oci.Rules, bootable bool) (*tree.Node, error) {
	if rules == (oci.Rules{}) && !bootable {
		img, err := oci.EnsureImage(ctx, r, name)
		if err != nil {
			return nil, err
		}
		root, _, err := r.ReadImage(img)
		return root, err
	}
	var root *tree.Node
	var err error
	if bootable {
		root, err = oci.BootableTreeWith(ctx, r, name, rules)
	} else {
		root, err = oci.ImageTree(ctx, r, name, rules)
	}
	if err != nil {
		return nil, err
	}
	opts, err := r.ImageOptions()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := image.Write(&buf, root, opts); err != nil {
		return nil, err
	}
	return image.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), image.ReadOptions{})
}

func newOCIComputeIDCmd(rf *repoFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "compute-id [--bootable] [--xattrs MODE] [--all] NAME",
		Short: "Print the composefs image ID of a stored OCI image's rootfs",
		Long: `Compute, from the stored layers of the OCI image NAME merged by
composefs-rs's rules, the digest of its composefs image in the repository's
algorithm and EROFS format, and print it in hex; nothing is stored (cfsctl oci
compute-id, which prints the same digest). With the default --xattrs it is the
image pull made. With --bootable, the digest of its bootable variant (cfsctl oci
compute-id --bootable), the image pull --bootable links and compute-karg --oci
prints the karg of.`,
		Args: cobra.ExactArgs(1),
	}
	rules := ociRulesFlag(cmd)
	bootable := cmd.Flags().Bool("bootable", false, "the digest of the image's bootable variant")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		rl, err := rules()
		if err != nil {
			return err
		}
		return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
			if all {
				return printSealingDigests(ctx, cmd, rf, r, refName(args[0]))
			}
			compute := oci.ComputeIDWith
			if *bootable {
				compute = oci.ComputeBootableIDWith
			}
			d, err := compute(ctx, r, refName(args[0]), rl)
			if err != nil {
				return err
			}
			return rf.output(cmd, struct {
				ID string `json:"id"`
			}{d.Hex()}, func(w io.Writer) { fmt.Fprintln(w, d.Hex()) })
		})
	}
	cmd.Flags().BoolVar(&all, "all", false, "print every composefs digest of the sealing specification (manifest, config, merged EROFS, each layer's EROFS, in both algorithms), as annotation keys and values")
	return cmd
}

func newOCIImportLayerCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import-layer DIFFID [NAME] < LAYER.tar",
		Short: "Store a tar layer read from standard input as a split stream",
		Long: `Read a layer's tar archive (gzip or zstd compressed, or not) from standard
input and store it as cfsctl oci import-layer does: its files as objects, the
archive as the split stream streams/oci-layer-DIFFID (and, with NAME,
streams/refs/NAME), which "oci layer DIFFID" gives back byte for byte. The
archive's SHA-256 must be DIFFID (sha256:HEX); nothing is named otherwise.
Prints the stream's object ID.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				name := ""
				if len(args) == 2 {
					name = args[1]
				}
				d, err := oci.ImportLayer(ctx, r, args[0], cmd.InOrStdin(), name)
				if err != nil {
					return err
				}
				return rf.output(cmd, struct {
					Stream string `json:"stream"`
				}{d.Hex()}, func(w io.Writer) { fmt.Fprintln(w, digestID(r.Algorithm(), d.Hex())) })
			})
		},
	}
}

func newOCICopyCmd(rf *repoFlags) *cobra.Command {
	var from string
	var opts oci.CopyOptions
	cmd := &cobra.Command{
		Use:   "copy --from PATH [--name NAME] [--zerocopy] IMAGE",
		Short: "Copy an OCI image (and its layers) from another repository into this one",
		Long: `Copy the OCI image IMAGE (a tag or @sha256:DIGEST) of the repository at
--from into this repository, as cfsctl oci copy: its manifest and
configuration byte for byte, its layers rebuilt from the source's split
streams and stored again (in this repository's algorithm, checked against
their diff IDs), and its composefs image, tagged NAME (default: IMAGE's tag).
--zerocopy requires both repositories to use the same algorithm, as cfsctl's;
gocfs copies the objects all the same.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return errors.New("--from PATH: the source repository is required")
			}
			src, err := repo.Open(from, repo.Options{ReadOnly: true})
			if err != nil {
				return fmt.Errorf("opening source repository %s: %w", from, err)
			}
			defer src.Close()
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				opts.Pull.Progress = layerBars(cmd.ErrOrStderr())
				res, err := oci.Copy(ctx, r, src, refName(args[0]), opts)
				if err != nil {
					return err
				}
				return rf.output(cmd, res, func(w io.Writer) { printCopied(w, r, args[0], from, opts.Name, res) })
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the source repository")
	cmd.Flags().StringVar(&opts.Name, "name", "", "the tag the image gets here (default: IMAGE's tag)")
	cmd.Flags().BoolVar(&opts.Zerocopy, "zerocopy", false, "cfsctl's reflink/hardlink copy: requires the same algorithm (gocfs copies)")
	return cmd
}

// printCopied prints oci copy's report, as cfsctl's.
func printCopied(w io.Writer, r *repo.Repo, image, from, name string, res *oci.PullResult) {
	tagged := ""
	if name != "" {
		tagged = ", tagged as " + name
	}
	fmt.Fprintf(w, "Copied image %s from %s to destination repo%s\n", image, from, tagged)
	fmt.Fprintf(w, "Manifest digest: %s\n", res.ManifestDigest)
	in, err := oci.Inspect(r, "@"+res.ManifestDigest)
	if err != nil {
		return
	}
	if d, err := r.ResolveStream(oci.ManifestStreamName(res.ManifestDigest)); err == nil {
		fmt.Fprintf(w, "Manifest verity: %s\n", d.Hex())
	}
	fmt.Fprintf(w, "Config digest:   %s\n", in.ConfigDigest)
	if d, err := r.ResolveStream(oci.ConfigStreamName(in.ConfigDigest)); err == nil {
		fmt.Fprintf(w, "Config verity:   %s\n", d.Hex())
	}
}

func newOCIFsckCmd(rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck [IMAGE]",
		Short: "Check the OCI images (or IMAGE) and the repository; exit 1 on any problem",
		Long: `Check each tagged OCI image, or only IMAGE, as cfsctl oci fsck: its manifest
and configuration streams, every layer read back from its split stream to the
diff ID the configuration names, and that the layers make the composefs image
recorded at pull; then the whole repository, as "fsck". Exit status 1 on any
problem; with --json, as cfsctl, 0 unless the check itself fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				name := ""
				if len(args) == 1 {
					name = refName(args[0])
				}
				res, err := oci.Fsck(ctx, r, name)
				if err != nil {
					return err
				}
				reply := newFsckReply(r, res.Repository)
				out := struct {
					OK         bool             `json:"ok"`
					Images     []oci.ImageCheck `json:"images"`
					Repository *fsckReply       `json:"repository"`
				}{res.OK(), res.Images, reply}
				err = rf.output(cmd, out, func(w io.Writer) {
					for _, c := range res.Images {
						if c.Error == "" {
							fmt.Fprintf(w, "oci image %s: ok\n", c.Name)
						} else {
							fmt.Fprintf(w, "oci image %s: %s\n", c.Name, c.Error)
						}
					}
					printFsck(w, reply)
				})
				if err != nil {
					return err
				}
				if !res.OK() && !rf.json {
					return exitCode(1, fmt.Errorf("OCI image integrity check failed"))
				}
				return nil
			})
		},
	}
}
