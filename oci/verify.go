package oci

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gocfs/gocfs/fsverity"
)

// maxMetadataSize bounds the manifests, indexes, configurations and
// index.json files a pull reads into memory.
const maxMetadataSize = 16 << 20

// sizeUnknown is a descriptor size that is not known (a manifest fetched
// by tag): only the digest, if any, is checked.
const sizeUnknown = -1

// hasherFor returns a hash of the descriptor's digest algorithm.
func hasherFor(what string, d v1.Hash) (hash.Hash, error) {
	h, err := v1.Hasher(d.Algorithm)
	if err != nil || len(d.Hex) != 2*h.Size() {
		return nil, fmt.Errorf("oci: %s: %q is not a digest a pull can check", what, d)
	}
	return h, nil
}

// mismatch is the error for content that is not what its descriptor names:
// what it is, both digests and both sizes.
func mismatch(what string, want v1.Hash, wantSize int64, got string, gotSize int64) error {
	ws := ""
	if wantSize != sizeUnknown {
		ws = fmt.Sprintf(", %d bytes", wantSize)
	}
	return fmt.Errorf("%w: %s: want %s%s, got %s:%s (%d bytes)", ErrDigestMismatch, what, want, ws, want.Algorithm, got, gotSize)
}

// tooLong is the error for a blob longer than its descriptor says.
func tooLong(what string, want v1.Hash, size int64) error {
	return fmt.Errorf("%w: %s: %s is longer than the %d bytes its descriptor gives (refused before reading it all)", ErrDigestMismatch, what, want, size)
}

// checkBlob checks data against the digest and size of its descriptor.
func checkBlob(what string, d v1.Descriptor, data []byte) error {
	h, err := hasherFor(what, d.Digest)
	if err != nil {
		return err
	}
	h.Write(data)
	got := hex.EncodeToString(h.Sum(nil))
	if got != d.Digest.Hex || (d.Size != sizeUnknown && int64(len(data)) != d.Size) {
		return mismatch(what, d.Digest, d.Size, got, int64(len(data)))
	}
	return nil
}

// readBlob reads a blob of at most limit bytes (its descriptor's size when
// known) and checks it against its descriptor.
func readBlob(what string, d v1.Descriptor, r io.Reader, limit int64) ([]byte, error) {
	if d.Size != sizeUnknown {
		if d.Size > limit {
			return nil, fmt.Errorf("%w: %s %s is %d bytes, more than the %d a pull reads", ErrTooLarge, what, d.Digest, d.Size, limit)
		}
		limit = d.Size
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("oci: reading %s %s: %w", what, d.Digest, err)
	}
	if int64(len(data)) > limit {
		if d.Size != sizeUnknown {
			return nil, tooLong(what, d.Digest, d.Size)
		}
		return nil, fmt.Errorf("%w: %s is more than %d bytes", ErrTooLarge, what, limit)
	}
	if err := checkBlob(what, d, data); err != nil {
		return nil, err
	}
	return data, nil
}

// verifier checks a blob as it is read: it refuses to read past the
// descriptor's size, and at the end checks the size and the digest.
//
// A verifier whose digest is SHA-256 can hash the blob together with the
// archive it unpacks to (deferHash): decompress gives it each
// uncompressed chunk (hashArchive), and both go through one
// fsverity.SHA256Pair, the blob's bytes read since the last chunk paired
// with the chunk. The blob is then checked by checkDeferred, once it
// ended.
type verifier struct {
	what string
	d    v1.Descriptor
	r    io.Reader
	h    hash.Hash
	n    int64
	err  error
	// pair, when not nil, hashes the blob (stream 0) and the archive
	// (stream 1). Reads may come from another goroutine than
	// hashArchive's (zstd decodes ahead in one of its own), so pair,
	// pending, n and eof are then under mu.
	pair    *fsverity.SHA256Pair
	mu      sync.Mutex
	pending []byte // blob bytes read, not yet hashed
	eof     bool   // the blob ended
}

// maxPending bounds the blob bytes a verifier keeps to pair with archive
// bytes: past it (an archive that is slow to come out: a blob of empty
// compressed blocks) they are hashed alone.
const maxPending = 1 << 20

func newVerifier(what string, d v1.Descriptor, r io.Reader) (*verifier, error) {
	h, err := hasherFor(what, d.Digest)
	if err != nil {
		return nil, err
	}
	return &verifier{what: what, d: d, r: r, h: h}, nil
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if room := v.d.Size + 1 - v.n; int64(len(p)) > room {
		p = p[:room] // one byte more than the size shows a longer blob
	}
	k, err := v.r.Read(p)
	if v.pair != nil {
		v.mu.Lock()
		v.pending = append(v.pending, p[:k]...)
		if len(v.pending) >= maxPending {
			v.pair.Write(v.pending, nil)
			v.pending = v.pending[:0]
		}
		v.n += int64(k)
		v.mu.Unlock()
	} else {
		v.h.Write(p[:k])
		v.n += int64(k)
	}
	switch {
	case v.n > v.d.Size:
		v.err = tooLong(v.what, v.d.Digest, v.d.Size)
		return 0, v.err
	case errors.Is(err, io.EOF) && v.pair != nil:
		v.mu.Lock()
		v.eof = true
		v.mu.Unlock()
	case errors.Is(err, io.EOF):
		v.err = v.check(hex.EncodeToString(v.h.Sum(nil)))
		if v.err != nil {
			return k, v.err
		}
	}
	return k, err
}

// check compares got, the hex digest of the v.n bytes read, with the
// descriptor's digest and size.
func (v *verifier) check(got string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if got != v.d.Digest.Hex || v.n != v.d.Size {
		return mismatch(v.what, v.d.Digest, v.d.Size, got, v.n)
	}
	return nil
}

// deferHash makes the verifier hash the blob together with the archive
// (hashArchive), if its digest is SHA-256 and nothing was read yet,
// reporting whether it does. The caller then calls checkDeferred once
// ended says the blob ended (whatever its size).
func (v *verifier) deferHash() bool {
	if v.d.Digest.Algorithm == "sha256" && v.n == 0 {
		v.pair = fsverity.NewSHA256Pair()
	}
	return v.pair != nil
}

// ended tells whether Read reached the blob's end.
func (v *verifier) ended() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.eof
}

// hashArchive adds p to the archive's SHA-256, with the blob's bytes
// read since the last call to the blob's.
func (v *verifier) hashArchive(p []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pair.Write(v.pending, p)
	v.pending = v.pending[:0]
}

// archiveSum returns the SHA-256 of what hashArchive was given.
func (v *verifier) archiveSum() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pair.Sum(1, nil)
}

// checkDeferred checks the blob, which ended, against its descriptor.
func (v *verifier) checkDeferred() error {
	v.mu.Lock()
	v.pair.Write(v.pending, nil)
	v.pending = v.pending[:0]
	got := hex.EncodeToString(v.pair.Sum(0, nil))
	v.mu.Unlock()
	return v.check(got)
}
