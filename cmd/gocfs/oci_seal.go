package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/oci/seal"
	"github.com/gocfs/gocfs/repo"
)

// sealFlags are oci pull's and oci mount's --verify and --cert.
type sealFlags struct {
	mode, cert string
}

func (vf *sealFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&vf.mode, "verify", "none", "composefs sealing to require: none, sealed (the generated EROFS must have the sealed digest) or signed (and the signatures must be --cert's); see docs/sealing.md")
	cmd.Flags().StringVar(&vf.cert, "cert", "", "the X.509 certificate (PEM) signatures must be made with (--verify=signed)")
}

// parse returns the mode and the certificate.
func (vf *sealFlags) parse() (seal.Mode, *x509.Certificate, error) {
	mode, err := seal.ParseMode(vf.mode)
	if err != nil {
		return 0, nil, fmt.Errorf("--verify: %w", err)
	}
	if vf.cert == "" {
		if mode == seal.VerifySigned {
			return 0, nil, errors.New("--verify=signed needs --cert")
		}
		return mode, nil, nil
	}
	data, err := os.ReadFile(vf.cert)
	if err != nil {
		return 0, nil, fmt.Errorf("--cert: %w", err)
	}
	cert, err := seal.ParseCertificate(data)
	if err != nil {
		return 0, nil, fmt.Errorf("--cert %s: %w", vf.cert, err)
	}
	return mode, cert, nil
}

// pullVerified is oci pull, with the verification the flags ask for.
func pullVerified(ctx context.Context, r *repo.Repo, src string, opts oci.PullOptions, vf *sealFlags) (*oci.PullResult, error) {
	mode, cert, err := vf.parse()
	if err != nil {
		return nil, err
	}
	res, _, err := seal.Pull(ctx, r, src, seal.PullOptions{PullOptions: opts, Mode: mode, Cert: cert})
	return res, err
}

// mountVerified is oci mount, with the verification the flags ask for.
func mountVerified(ctx context.Context, r *repo.Repo, name, target string, o mount.Options, vf *sealFlags, source string) (*mounter.Mounted, error) {
	mode, cert, err := vf.parse()
	if err != nil {
		return nil, err
	}
	m, _, err := seal.Mount(ctx, r, name, target, seal.MountOptions{Mount: o, Mode: mode, Cert: cert, Source: source})
	return m, err
}

// loadSigner reads --key and --cert.
func loadSigner(key, cert string) (seal.Signer, error) {
	if key == "" && cert == "" {
		return nil, nil
	}
	if key == "" || cert == "" {
		return nil, errors.New("--key and --cert go together")
	}
	kb, err := os.ReadFile(key)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	cb, err := os.ReadFile(cert)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	return seal.LoadKeySigner(kb, cb)
}

// printDigests prints an image's composefs digests, one annotation key
// and value a line (a layer's key followed by its index).
func printDigests(w io.Writer, d *seal.Digests) {
	for _, e := range d.Entries() {
		if e.Role == seal.RoleLayer {
			fmt.Fprintf(w, "%s[%d] %s\n", e.Key(d.Algorithm), e.Layer, e.Digest.Hex())
			continue
		}
		fmt.Fprintf(w, "%s %s\n", e.Key(d.Algorithm), e.Digest.Hex())
	}
}

// digestsJSON is Digests for --json.
func digestsJSON(name, manifest string, d *seal.Digests) any {
	layers := make([]string, len(d.Layers))
	for i, l := range d.Layers {
		layers[i] = l.Hex()
	}
	return struct {
		Name           string   `json:"name"`
		Algorithm      string   `json:"algorithm"`
		ManifestDigest string   `json:"manifest_digest"`
		Written        string   `json:"written,omitempty"`
		Manifest       string   `json:"manifest"`
		Config         string   `json:"config"`
		Merged         string   `json:"merged"`
		Layers         []string `json:"layers"`
	}{name, d.Algorithm.String(), d.ManifestDigest, manifest, d.Manifest.Hex(), d.Config.Hex(), d.Merged.Hex(), layers}
}

func newOCISealCmd(rf *repoFlags) *cobra.Command {
	var opts oci.PullOptions
	var key, cert string
	cmd := &cobra.Command{
		Use:   "seal SOURCE DEST",
		Short: "Write SOURCE to DEST sealed: its composefs digests in its manifest (inline mode)",
		Long: `Pull SOURCE (a registry reference or "oci:DIR[:TAG]") into the repository,
compute its composefs digests (merged EROFS, each layer's EROFS, config) and
write to DEST (a registry reference or "oci:DIR[:TAG]") the same image with
a manifest carrying them as annotations, as composefs's sealing specification
says (inline mode); the layers are not rewritten. With --key and --cert the
config and merged digests are signed too (".sig" annotations). Prints the
sealed manifest's digest. See docs/sealing.md.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			signer, err := loadSigner(key, cert)
			if err != nil {
				return err
			}
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				res, err := seal.Seal(ctx, r, args[0], args[1], opts, signer)
				if err != nil {
					return err
				}
				return rf.printSealResult(cmd, res)
			})
		},
	}
	addRemoteFlags(cmd, &opts)
	cmd.Flags().StringVar(&key, "key", "", "sign with this private key (PEM), as well (inline signatures)")
	cmd.Flags().StringVar(&cert, "cert", "", "the key's X.509 certificate (PEM)")
	return cmd
}

func newOCISignCmd(rf *repoFlags) *cobra.Command {
	var opts oci.PullOptions
	var key, cert string
	cmd := &cobra.Command{
		Use:   "sign IMAGE --key KEY --cert CERT",
		Short: "Sign a registry image's composefs digests and push them as a referrer (artifact mode)",
		Long: `Pull the registry image IMAGE into the repository, compute its composefs
digests (manifest, config, merged EROFS), sign each as an fs-verity builtin
signature (PKCS#7 over the kernel's fsverity_formatted_digest) with KEY, and
push the composefs metadata artifact (artifactType
application/vnd.composefs.metadata.v1) as a referrer of IMAGE: through the
OCI referrers API, or the "sha256-HEX" tag where the registry lacks it. The
image itself is not touched. Prints the artifact's digest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || cert == "" {
				return errors.New("sign needs --key and --cert")
			}
			signer, err := loadSigner(key, cert)
			if err != nil {
				return err
			}
			return rf.run(cmd, func(ctx context.Context, r *repo.Repo) error {
				res, err := seal.Sign(ctx, r, args[0], opts, signer)
				if err != nil {
					return err
				}
				return rf.printSealResult(cmd, res)
			})
		},
	}
	addRemoteFlags(cmd, &opts)
	cmd.Flags().StringVar(&key, "key", "", "the private key (PEM: PKCS#8, PKCS#1 or SEC 1)")
	cmd.Flags().StringVar(&cert, "cert", "", "the key's X.509 certificate (PEM), the one the .fs-verity keyring holds")
	return cmd
}

// printSealResult prints what oci seal and oci sign made: the digests on
// standard error, the new manifest's (or artifact's) digest on standard
// output, or both as JSON.
func (rf *repoFlags) printSealResult(cmd *cobra.Command, res *seal.SealResult) error {
	return rf.output(cmd, digestsJSON(res.Name, res.Manifest, res.Digests), func(w io.Writer) {
		printDigests(cmd.ErrOrStderr(), res.Digests)
		fmt.Fprintln(w, res.Manifest)
	})
}

// addRemoteFlags adds the registry flags seal and sign share with pull.
func addRemoteFlags(cmd *cobra.Command, opts *oci.PullOptions) {
	cmd.Flags().StringVar(&opts.Name, "name", "", "the name the image gets in the repository (default: the source's)")
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "the platform to pick from a multi-platform image (OS/ARCH[/VARIANT])")
	cmd.Flags().BoolVar(&opts.Insecure, "insecure", false, "allow plain HTTP to the registry (always allowed to localhost)")
}

// printSealingDigests is oci compute-id --all: the digests in each
// algorithm gocfs computes, the repository's first.
func printSealingDigests(ctx context.Context, cmd *cobra.Command, rf *repoFlags, r *repo.Repo, name string) error {
	algs := []seal.Algorithm{seal.AlgorithmFor(r.Algorithm()), seal.SHA256_12}
	if algs[0] == seal.SHA256_12 {
		algs[1] = seal.SHA512_12
	}
	var all []*seal.Digests
	var js []any
	for _, a := range algs {
		d, err := seal.Compute(ctx, r, name, a)
		if err != nil {
			return err
		}
		all = append(all, d)
		js = append(js, digestsJSON(name, "", d))
	}
	return rf.output(cmd, js, func(w io.Writer) {
		for _, d := range all {
			printDigests(w, d)
		}
	})
}
