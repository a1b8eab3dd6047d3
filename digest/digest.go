// Package digest is gocfs's one digest type: an fs-verity digest with its
// algorithm, validated once where it enters the program and then passed by
// value. Objects in a composefs store are named by it, images are checked
// against it, and metacopy xattrs carry its bytes.
//
//	d, err := digest.Parse("4a1c…")      // algorithm from the length
//	d.Hex()                              // "4a1c…"
//	d.ObjectPath()                       // "4a/1c…", the object's name in a store
//	d.Algorithm()                        // fsverity.SHA256
//
// A Digest is comparable, so it can be a map key; the zero Digest is
// invalid and reported by IsZero.
package digest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/gocfs/gocfs/fsverity"
)

// ErrInvalid is wrapped by every error about a malformed digest or object
// path.
var ErrInvalid = errors.New("digest: invalid digest")

// Digest is an fs-verity digest and the algorithm that made it.
type Digest struct {
	alg fsverity.Algorithm
	sum [fsverity.MaxDigestSize]byte
}

// New returns the digest b made with alg. b must have alg's size.
func New(alg fsverity.Algorithm, b []byte) (Digest, error) {
	if !alg.Valid() {
		return Digest{}, fmt.Errorf("%w: unknown algorithm %s", ErrInvalid, alg)
	}
	if len(b) != alg.Size() {
		return Digest{}, fmt.Errorf("%w: a %s digest has %d bytes, got %d", ErrInvalid, alg, alg.Size(), len(b))
	}
	var d Digest
	d.alg = alg
	copy(d.sum[:], b)
	return d, nil
}

// MustNew is New for digests the program computed itself; it panics on a
// size that does not fit alg, which would be a bug.
func MustNew(alg fsverity.Algorithm, b []byte) Digest {
	d, err := New(alg, b)
	if err != nil {
		panic(err)
	}
	return d
}

// FromBytes returns the digest b, its algorithm told by its length: 32
// bytes are SHA-256, 64 bytes SHA-512.
func FromBytes(b []byte) (Digest, error) {
	alg, err := algBySize(len(b))
	if err != nil {
		return Digest{}, err
	}
	return New(alg, b)
}

// Parse decodes a hexadecimal digest, its algorithm told by its length: 64
// digits are SHA-256, 128 SHA-512. Only lowercase digits are accepted, as
// composefs writes them.
func Parse(s string) (Digest, error) {
	alg, err := algBySize(len(s) / 2)
	if err != nil || len(s)%2 != 0 {
		return Digest{}, fmt.Errorf("%w: %q is not 64 or 128 hex digits", ErrInvalid, shorten(s))
	}
	return ParseAlg(s, alg)
}

// ParseAlg decodes a hexadecimal digest made with alg.
func ParseAlg(s string, alg fsverity.Algorithm) (Digest, error) {
	if !alg.Valid() {
		return Digest{}, fmt.Errorf("%w: unknown algorithm %s", ErrInvalid, alg)
	}
	if len(s) != 2*alg.Size() || !isLowerHex(s) {
		return Digest{}, fmt.Errorf("%w: %q is not a %s digest (%d lowercase hex digits)", ErrInvalid, shorten(s), alg, 2*alg.Size())
	}
	var d Digest
	d.alg = alg
	hex.Decode(d.sum[:alg.Size()], []byte(s))
	return d, nil
}

// ParseObjectPath decodes an object's path in a store, "XX/REST" (the
// first two hex digits, a slash, the rest), leading slashes allowed. It
// checks the shape strictly, so a path that passes names nothing but an
// object in the store's directory.
func ParseObjectPath(rel string) (Digest, error) {
	for len(rel) > 0 && rel[0] == '/' {
		rel = rel[1:]
	}
	if len(rel) < 3 || rel[2] != '/' {
		return Digest{}, fmt.Errorf("%w: object path %q is not XX/REST", ErrInvalid, shorten(rel))
	}
	d, err := Parse(rel[:2] + rel[3:])
	if err != nil {
		return Digest{}, fmt.Errorf("%w: object path %q: not a digest", ErrInvalid, shorten(rel))
	}
	return d, nil
}

// Algorithm returns the algorithm that made d.
func (d Digest) Algorithm() fsverity.Algorithm { return d.alg }

// Size returns d's length in bytes (0 for the zero Digest).
func (d Digest) Size() int { return d.alg.Size() }

// Bytes returns a copy of d's bytes.
func (d Digest) Bytes() []byte { return bytes.Clone(d.sum[:d.alg.Size()]) }

// AppendBytes appends d's bytes to b, without allocating when b has room.
func (d Digest) AppendBytes(b []byte) []byte { return append(b, d.sum[:d.alg.Size()]...) }

// Hex returns d in lowercase hexadecimal ("" for the zero Digest).
func (d Digest) Hex() string { return hex.EncodeToString(d.sum[:d.alg.Size()]) }

// String returns d.Hex().
func (d Digest) String() string { return d.Hex() }

// ObjectPath returns the object's path relative to a store's objects
// directory: "XX/REST".
func (d Digest) ObjectPath() string {
	h := d.Hex()
	if h == "" {
		return ""
	}
	return h[:2] + "/" + h[2:]
}

// IsZero reports whether d is the zero Digest (no algorithm, no bytes).
func (d Digest) IsZero() bool { return d.alg == 0 }

// Equal reports whether d has the algorithm alg and the bytes b.
func (d Digest) Equal(alg fsverity.Algorithm, b []byte) bool {
	return d.alg == alg && bytes.Equal(d.sum[:d.alg.Size()], b)
}

func algBySize(n int) (fsverity.Algorithm, error) {
	switch n {
	case fsverity.SHA256.Size():
		return fsverity.SHA256, nil
	case fsverity.SHA512.Size():
		return fsverity.SHA512, nil
	}
	return 0, fmt.Errorf("%w: %d bytes is neither a SHA-256 nor a SHA-512 digest", ErrInvalid, n)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// shorten keeps error messages about hostile input bounded.
func shorten(s string) string {
	const max = 140
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// IsHex reports whether s is exactly n lowercase hexadecimal digits: the
// shape of a digest, or of part of one (an object directory's two digits),
// as composefs spells them in paths.
func IsHex(s string, n int) bool { return len(s) == n && isLowerHex(s) }
