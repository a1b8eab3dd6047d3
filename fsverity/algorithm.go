package fsverity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BlockSize is the fs-verity Merkle tree block size used by this package, in
// bytes. It is also the data block size: the kernel requires the two to be
// equal, and composefs always uses 4096.
const BlockSize = 4096

// logBlockSize is log2(BlockSize), as stored in the descriptor.
const logBlockSize = 12

// MaxDigestSize is the largest digest size of any supported [Algorithm], in
// bytes.
const MaxDigestSize = sha512.Size

// descriptorSize is the size of the kernel's struct fsverity_descriptor.
const descriptorSize = 256

// Algorithm is an fs-verity hash algorithm, numbered as in the kernel's UAPI
// (FS_VERITY_HASH_ALG_*).
type Algorithm uint8

// The supported hash algorithms.
const (
	// SHA256 is FS_VERITY_HASH_ALG_SHA256: SHA-256, 32-byte digests.
	SHA256 Algorithm = 1
	// SHA512 is FS_VERITY_HASH_ALG_SHA512: SHA-512, 64-byte digests.
	SHA512 Algorithm = 2
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// [errors.Is].
var (
	// ErrUnknownAlgorithm reports an Algorithm value or name that is not
	// SHA256 or SHA512.
	ErrUnknownAlgorithm = errors.New("fsverity: unknown hash algorithm")

	// ErrInvalidDigest reports a textual digest that does not parse: wrong
	// length or a character that is not a hexadecimal digit.
	ErrInvalidDigest = errors.New("fsverity: invalid digest")

	// ErrNotRegular reports that a path given to DigestFile or
	// DigestFileParallel does not name a regular file. fs-verity exists
	// only for regular files.
	ErrNotRegular = errors.New("fsverity: not a regular file")

	// ErrNotSupported reports that the kernel or the file system does not
	// support fs-verity (EOPNOTSUPP, ENOTTY or ENOSYS from the ioctl), or
	// that the operating system is not Linux.
	ErrNotSupported = errors.New("fsverity: not supported by the kernel or file system")

	// ErrNotEnabled reports that fs-verity is not enabled on the file
	// (ENODATA from FS_IOC_MEASURE_VERITY).
	ErrNotEnabled = errors.New("fsverity: not enabled on the file")
)

// Size returns the digest size of a in bytes: 32 for SHA256, 64 for SHA512,
// and 0 for an unknown algorithm.
func (a Algorithm) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

// String returns "sha256" or "sha512", the names the fsverity tool and
// composefs use, or "Algorithm(N)" for an unknown value.
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SHA512:
		return "sha512"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// Valid reports whether a is a supported algorithm.
func (a Algorithm) Valid() bool { return a == SHA256 || a == SHA512 }

// check returns nil if a is supported and an error wrapping
// ErrUnknownAlgorithm otherwise.
func (a Algorithm) check() error {
	if a.Valid() {
		return nil
	}
	return fmt.Errorf("%w: %d", ErrUnknownAlgorithm, uint8(a))
}

// ParseAlgorithm returns the Algorithm named s: "sha256" or "sha512",
// ignoring case, with or without a dash ("SHA-256"). Any other name gives an
// error wrapping [ErrUnknownAlgorithm].
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(s) {
	case "sha256", "sha-256":
		return SHA256, nil
	case "sha512", "sha-512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("%w: %q (want sha256 or sha512)", ErrUnknownAlgorithm, s)
}

// Hex returns d as lowercase hexadecimal.
func Hex(d []byte) string { return hex.EncodeToString(d) }

// ParseHex decodes s, the hexadecimal form of a digest made with alg, and
// returns the digest. s must have exactly 2×alg.Size() digits, in either
// case, and nothing else. Errors wrap [ErrInvalidDigest] or
// [ErrUnknownAlgorithm].
func ParseHex(s string, alg Algorithm) ([]byte, error) {
	if err := alg.check(); err != nil {
		return nil, err
	}
	if want := 2 * alg.Size(); len(s) != want {
		return nil, fmt.Errorf("%w: %s digest must be %d hex digits, got %d", ErrInvalidDigest, alg, want, len(s))
	}
	d := make([]byte, alg.Size())
	for i := range d {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			j := 2 * i
			if ok1 {
				j++
			}
			return nil, fmt.Errorf("%w: invalid hex digit %q at offset %d", ErrInvalidDigest, s[j], j)
		}
		d[i] = hi<<4 | lo
	}
	return d, nil
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
