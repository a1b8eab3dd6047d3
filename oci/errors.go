package oci

import "errors"

// Errors a pull wraps, with the blob or layer they are about.
var (
	// ErrDigestMismatch: a manifest, index, configuration or layer does
	// not have the digest (or the size) of the descriptor that names it,
	// or a layer does not unpack to its configuration's diff ID.
	ErrDigestMismatch = errors.New("oci: content does not match its digest")
	// ErrTooLarge: a blob is larger than a pull accepts (a manifest or
	// configuration over maxMetadataSize), or the layers would write more
	// than PullOptions.MaxBytes.
	ErrTooLarge = errors.New("oci: too large")
	// ErrStalled: the registry sent nothing for PullOptions.IdleTimeout.
	ErrStalled = errors.New("oci: the registry stalled")
)
