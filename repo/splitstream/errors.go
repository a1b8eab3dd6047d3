package splitstream

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors. Every error the Reader returns for a bad file wraps one of
// them, and through them [fs.ErrInvalid], so errors.Is(err, fs.ErrInvalid)
// tells a bad split stream from an I/O error of the file or of an object.
var (
	// ErrNotSplitStream reports a file shorter than the 32-byte header, or
	// one without the "SplitStream" magic in either header layout.
	ErrNotSplitStream = fmt.Errorf("splitstream: not a split stream: %w", fs.ErrInvalid)
	// ErrVersion reports a header version other than 0, the only one there
	// is.
	ErrVersion = fmt.Errorf("splitstream: unknown format version: %w", fs.ErrInvalid)
	// ErrAlgorithm reports an fs-verity algorithm that is neither SHA-256
	// (1) nor SHA-512 (2), or not the one the caller asked for
	// ([WithAlgorithm]).
	ErrAlgorithm = fmt.Errorf("splitstream: unsupported fs-verity algorithm: %w", fs.ErrInvalid)
	// ErrBlockSize reports an fs-verity block size other than 4096 bytes
	// (lg_blocksize 12), the only one composefs-rs reads or writes.
	ErrBlockSize = fmt.Errorf("splitstream: unsupported fs-verity block size: %w", fs.ErrInvalid)
	// ErrContentType reports a content type other than the one the caller
	// asked for ([WithContentType]).
	ErrContentType = fmt.Errorf("splitstream: unexpected content type: %w", fs.ErrInvalid)
	// ErrCorrupt reports a file whose structures are inconsistent: a range
	// outside the file, reversed or overlapping another, a reference array
	// that is not a whole number of digests, a malformed named reference,
	// undecodable zstd data, a truncated or out-of-range chunk.
	ErrCorrupt = fmt.Errorf("splitstream: corrupt split stream: %w", fs.ErrInvalid)
	// ErrSize reports content whose size is not the stream_size the file
	// records: inline chunks adding up to more, or a reassembled stream
	// longer or shorter.
	ErrSize = fmt.Errorf("splitstream: content size differs from stream_size: %w", fs.ErrInvalid)
	// ErrLimit reports a file that would make the reader use more memory
	// than its size justifies: a zstd window over [MaxWindowSize] or named
	// references that decompress to more than [MaxNamedRefsSize].
	ErrLimit = fmt.Errorf("splitstream: split stream exceeds reader limits: %w", fs.ErrInvalid)
)

// errFinished is returned by a Writer used after Finish.
var errFinished = errors.New("splitstream: writer already finished")

// Error describes a problem found in one field or at one place of a split
// stream. Err is one of the sentinel errors, so errors.Is works on an
// *Error.
type Error struct {
	Field  string // the header or info field, section or chunk concerned
	Offset int64  // byte offset in the file, or -1
	Detail string // what is wrong
	Err    error  // sentinel: ErrCorrupt, ErrVersion, ...
}

// Error formats the error with its field and offset.
func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Field != "" {
		s += ": " + e.Field
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (offset %#x)", e.Offset)
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// errAt returns an *Error about field at file offset off (-1 for none).
func errAt(sentinel error, field string, off int64, format string, args ...any) error {
	return &Error{Field: field, Offset: off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
}
