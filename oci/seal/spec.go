package seal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
)

// The names composefs's OCI sealing specification gives
// (composefs-rs crates/composefs-oci/src/sealing_spec.rs, "Media Types"
// and "Artifact Manifest").
const (
	// ArtifactType is the artifactType of a composefs metadata artifact
	// (artifact mode).
	ArtifactType = "application/vnd.composefs.metadata.v1"
	// SignatureMediaType is the media type of an artifact layer holding a
	// PKCS#7 DER signature.
	SignatureMediaType = "application/vnd.composefs.signature.v1+pkcs7"
	// EmptyConfigMediaType, EmptyConfigDigest and EmptyConfig are the OCI
	// empty descriptor an artifact's config points at.
	EmptyConfigMediaType = "application/vnd.oci.empty.v1+json"
	EmptyConfigDigest    = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	EmptyConfig          = "{}"
	// keyPrefix starts every composefs annotation key; sigSuffix ends the
	// key of a signature (inline mode).
	keyPrefix = "composefs."
	sigSuffix = ".sig"
	// erofsFormat is the EROFS format segment of the keys of EROFS roles.
	erofsFormat = "erofs.v1"
)

// Sentinel errors. Errors of this package wrap one of them; test with
// errors.Is.
var (
	// ErrNotSealed reports an image without the composefs digests a
	// verification needs (no annotation, no artifact).
	ErrNotSealed = errors.New("seal: image not sealed")
	// ErrMismatch reports a digest computed locally that is not the one
	// sealed.
	ErrMismatch = errors.New("seal: digest mismatch")
	// ErrSignature reports a signature that does not verify.
	ErrSignature = errors.New("seal: bad signature")
	// ErrMalformed reports sealing metadata that breaks the
	// specification's rules (a bad key, value, order or artifact).
	ErrMalformed = errors.New("seal: malformed sealing metadata")
	// ErrUnsupported reports an algorithm or block size gocfs cannot
	// compute.
	ErrUnsupported = errors.New("seal: unsupported")
)

// Algorithm is an fs-verity digest algorithm and Merkle tree block size,
// written "fsverity-{alg}-{log2 block size}" ("fsverity-sha512-12").
type Algorithm struct {
	Hash         fsverity.Algorithm
	LogBlockSize uint8
}

// The algorithms the specification names. gocfs computes only 4 KiB
// blocks, as composefs-rs.
var (
	SHA256_12 = Algorithm{fsverity.SHA256, 12}
	SHA512_12 = Algorithm{fsverity.SHA512, 12}
	SHA256_16 = Algorithm{fsverity.SHA256, 16}
	SHA512_16 = Algorithm{fsverity.SHA512, 16}
)

// AlgorithmFor returns the 4 KiB-block algorithm of hash alg, the one a
// repository of that algorithm seals with.
func AlgorithmFor(alg fsverity.Algorithm) Algorithm { return Algorithm{alg, 12} }

// String returns the short form, "fsverity-sha512-12".
func (a Algorithm) String() string {
	return "fsverity-" + a.Hash.String() + "-" + strconv.Itoa(int(a.LogBlockSize))
}

// Computable reports an error wrapping ErrUnsupported unless gocfs can
// compute digests with a (4 KiB blocks, SHA-256 or SHA-512).
func (a Algorithm) Computable() error {
	if !a.Hash.Valid() || a.LogBlockSize != 12 {
		return fmt.Errorf("%w: %s (gocfs computes fsverity-sha256-12 and fsverity-sha512-12)", ErrUnsupported, a)
	}
	return nil
}

// ParseAlgorithm parses "fsverity-{sha256|sha512}-{12|16}".
func ParseAlgorithm(s string) (Algorithm, error) {
	rest, ok := strings.CutPrefix(s, "fsverity-")
	name, bits, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return Algorithm{}, fmt.Errorf("%w: algorithm %q is not fsverity-ALG-BITS", ErrMalformed, s)
	}
	var a Algorithm
	switch name {
	case "sha256":
		a.Hash = fsverity.SHA256
	case "sha512":
		a.Hash = fsverity.SHA512
	default:
		return Algorithm{}, fmt.Errorf("%w: algorithm %q: hash %q is not sha256 or sha512", ErrMalformed, s, name)
	}
	switch bits {
	case "12", "16":
		a.LogBlockSize = uint8(bits[1]-'0') + 10
	default:
		return Algorithm{}, fmt.Errorf("%w: algorithm %q: block size 2^%s is not 2^12 or 2^16", ErrMalformed, s, bits)
	}
	return a, nil
}

// Role is what a digest covers: one layer's EROFS, the merged EROFS, its
// boot variant, the configuration or the manifest.
type Role string

// The roles of the specification's annotation key scheme.
const (
	RoleLayer          Role = "layer"
	RoleMerged         Role = "merged"
	RoleMergedBootable Role = "merged.bootable"
	RoleConfig         Role = "config"
	RoleManifest       Role = "manifest"
)

// erofs reports whether the role's digest covers a locally generated
// EROFS (its keys carry "erofs.v1"), rather than JSON bytes.
func (r Role) erofs() bool { return r == RoleLayer || r == RoleMerged || r == RoleMergedBootable }

// Key returns the annotation key of role's digest made with a:
// "composefs.{role}.erofs.v1.{alg}" for EROFS roles,
// "composefs.{role}.{alg}" for config and manifest.
func Key(role Role, a Algorithm) string {
	if role.erofs() {
		return keyPrefix + string(role) + "." + erofsFormat + "." + a.String()
	}
	return keyPrefix + string(role) + "." + a.String()
}

// SigKey returns the annotation key of the signature of role's digest
// (inline mode): Key with ".sig" appended.
func SigKey(role Role, a Algorithm) string { return Key(role, a) + sigSuffix }

// ParseKey parses a composefs annotation key. ok is false for keys that
// are not composefs's ("composefs." prefix); a key with the prefix that
// does not follow the scheme gives an error wrapping ErrMalformed.
func ParseKey(key string) (role Role, a Algorithm, sig, ok bool, err error) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", Algorithm{}, false, false, nil
	}
	rest, sig = strings.CutSuffix(rest, sigSuffix)
	i := strings.Index(rest, ".fsverity-")
	if i < 0 {
		return "", Algorithm{}, false, true, fmt.Errorf("%w: annotation %q has no fsverity-ALG-BITS", ErrMalformed, key)
	}
	if a, err = ParseAlgorithm(rest[i+1:]); err != nil {
		return "", Algorithm{}, false, true, fmt.Errorf("annotation %q: %w", key, err)
	}
	head := rest[:i]
	for _, r := range []Role{RoleLayer, RoleMerged, RoleMergedBootable, RoleConfig, RoleManifest} {
		if Key(r, a) == keyPrefix+head+"."+a.String() {
			return r, a, sig, true, nil
		}
	}
	return "", Algorithm{}, false, true, fmt.Errorf("%w: annotation %q: unknown role or format %q", ErrMalformed, key, head)
}
