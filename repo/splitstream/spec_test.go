package splitstream

import "github.com/gocfs/gocfs/internal/rsspec"

// The spec reader is internal/rsspec (an independent reader of the format,
// shared with the oci package's repository tests).
type specFile = rsspec.File

func specParse(b []byte) (*specFile, error)       { return rsspec.Parse(b) }
func specSame(a, b *specFile) error               { return rsspec.Same(a, b) }
func specLayoutCheck(b []byte, f *specFile) error { return rsspec.LayoutCheck(b, f) }
