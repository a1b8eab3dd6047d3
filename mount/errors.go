package mount

import (
	"errors"
	"fmt"
)

var (
	// ErrNotComposefs is wrapped by the error for an image file that does
	// not start with the composefs header.
	ErrNotComposefs = errors.New("not a composefs image")

	// ErrDigestMismatch is wrapped by the error for an image whose
	// fs-verity digest is not Options.ExpectedDigest. The message shows
	// both digests.
	ErrDigestMismatch = errors.New("image fs-verity digest mismatch")

	// ErrNeedRoot is wrapped (beside the EPERM from the kernel) by the
	// error for a mount refused for lack of privilege.
	ErrNeedRoot = errors.New("mounting needs root (CAP_SYS_ADMIN)")

	// ErrInvalidImage is wrapped by the error for an image that the
	// structural check (package verify) refuses; the message lists what
	// the check found.
	ErrInvalidImage = errors.New("image failed the structural check")

	// ErrTooLarge is wrapped by the error of SealedCopy for a file larger
	// than its limit.
	ErrTooLarge = errors.New("file too large")
)

// FeatureError reports that the running kernel lacks something a mount
// needs. Feature names it, Since is the first Linux version that has it,
// and Err is what the kernel answered.
type FeatureError struct {
	Feature string
	Since   string
	Err     error
}

// Error says what is missing and which Linux version brings it.
func (e *FeatureError) Error() string {
	return fmt.Sprintf("this kernel lacks %s (Linux %s or newer, built with it): %v", e.Feature, e.Since, e.Err)
}

// Unwrap returns the kernel's error.
func (e *FeatureError) Unwrap() error { return e.Err }
