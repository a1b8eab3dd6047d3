package boot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/schema"
)

// The two kernel arguments that name a composefs root image
// (crates/composefs-boot/src/cmdline.rs, KARG_V2 and KARG_COMPOSEFS_DIGEST).
const (
	// KargLegacy is "composefs=[?]HEX": the image's fs-verity digest,
	// SHA-256 or SHA-512 told by its length.
	KargLegacy = "composefs"
	// KargDigest is "composefs.digest=[?]vN-HASH-LG:HEX": the EROFS format
	// version (v1 or v2), the fs-verity hash and log2 of its block size,
	// and the digest.
	KargDigest = "composefs.digest"
)

// ErrKarg is wrapped by every error about a malformed composefs kernel
// argument.
var ErrKarg = errors.New("boot: bad composefs kernel argument")

// Karg is one composefs kernel argument: the digest of the root image and
// whether fs-verity may be skipped.
type Karg struct {
	// Digest is the image's fs-verity digest, its name under images/.
	Digest digest.Digest
	// Insecure is set by a "?" before the value: the image is mounted
	// without requiring fs-verity on its objects.
	Insecure bool
	// Version is the EROFS format version a composefs.digest= value names
	// (1 or 2); 0 for the legacy composefs= form.
	Version int
}

// String renders k as a kernel argument, as composefs-rs writes it:
// "composefs.digest=[?]vN-sha256-12:HEX" when Version is set,
// "composefs=[?]HEX" otherwise.
func (k Karg) String() string {
	q := ""
	if k.Insecure {
		q = "?"
	}
	if k.Version == 0 {
		return KargLegacy + "=" + q + k.Digest.Hex()
	}
	return fmt.Sprintf("%s=%sv%d-%s:%s", KargDigest, q, k.Version, algName(k.Digest.Algorithm()), k.Digest.Hex())
}

// NewKarg returns the karg composefs-rs's compute-karg prints for an image
// of the given EROFS format version (0 and 1 are "composefs.digest=v1-…",
// 2 is the legacy "composefs=").
func NewKarg(d digest.Digest, erofsVersion int, insecure bool) Karg {
	k := Karg{Digest: d, Insecure: insecure}
	if erofsVersion < 2 {
		k.Version = 1
	}
	return k
}

// algName is the "HASH-LG" part of a composefs.digest= value.
func algName(a fsverity.Algorithm) string {
	if a == fsverity.SHA512 {
		return "sha512-12"
	}
	return "sha256-12"
}

// SplitCmdline splits a kernel command line as the kernel does: on
// whitespace, except inside double quotes (which stay in the words; there
// is no escape).
func SplitCmdline(cmdline string) []string {
	var words []string
	quoted, start := false, -1
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		if c == '"' {
			quoted = !quoted
		}
		space := !quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
		switch {
		case space && start >= 0:
			words = append(words, cmdline[start:i])
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	if start >= 0 {
		words = append(words, cmdline[start:])
	}
	return words
}

// ParseCmdline returns every composefs kernel argument of cmdline, in the
// order they appear (setup-root mounts the first whose image exists, as
// composefs-setup-root does). A composefs argument that does not parse is
// an error, never skipped: a typo must not boot something else.
func ParseCmdline(cmdline string) ([]Karg, error) {
	var out []Karg
	for _, w := range SplitCmdline(cmdline) {
		key, val, ok := strings.Cut(w, "=")
		if !ok || (key != KargLegacy && key != KargDigest) {
			continue
		}
		k, err := ParseKarg(key, val)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// ParseKarg parses the value of the composefs= or composefs.digest= kernel
// argument (key says which).
func ParseKarg(key, val string) (Karg, error) {
	var k Karg
	rest, insecure := strings.CutPrefix(val, "?")
	k.Insecure = insecure
	switch key {
	case KargLegacy:
		d, err := digest.Parse(rest)
		if err != nil {
			return Karg{}, fmt.Errorf("%w: %s=%s: %w", ErrKarg, key, schema.Shorten(val), err)
		}
		k.Digest = d
	case KargDigest:
		if err := parseDescribed(&k, rest); err != nil {
			return Karg{}, fmt.Errorf("%w: %s=%s: %w", ErrKarg, key, schema.Shorten(val), err)
		}
	default:
		return Karg{}, fmt.Errorf("%w: %q is not %s or %s", ErrKarg, schema.Shorten(key), KargLegacy, KargDigest)
	}
	return k, nil
}

// parseDescribed parses "vN-HASH-LG:HEX" into k.
func parseDescribed(k *Karg, s string) error {
	desc, hex, ok := strings.Cut(s, ":")
	if !ok {
		return errors.New("want <version>-<hash>-<blocksize>:<hex>")
	}
	ver, alg, ok := strings.Cut(desc, "-")
	if !ok {
		return fmt.Errorf("descriptor %q: want v<N>-<hash>-<blocksize>", schema.Shorten(desc))
	}
	switch ver {
	case "v1":
		k.Version = 1
	case "v2":
		k.Version = 2
	default:
		return fmt.Errorf("unsupported format version %q (want v1 or v2)", schema.Shorten(ver))
	}
	var a fsverity.Algorithm
	switch alg {
	case "sha256-12":
		a = fsverity.SHA256
	case "sha512-12":
		a = fsverity.SHA512
	default:
		return fmt.Errorf("unsupported algorithm %q (want sha256-12 or sha512-12)", schema.Shorten(alg))
	}
	d, err := digest.ParseAlg(hex, a)
	if err != nil {
		return err
	}
	k.Digest = d
	return nil
}
