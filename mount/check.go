package mount

import (
	"fmt"
	"io"
	"strings"

	"github.com/gocfs/gocfs/verify"
)

// maxListed is how many of the structural check's problems an error lists.
const maxListed = 3

// CheckImage runs the structural check of package verify on the image in
// r, size bytes long, called name in errors. It returns nil for a sound
// image, and for any other an error wrapping [ErrInvalidImage] that lists
// the first problems found (path, what, why, nid and offset). Every mount
// calls it before the kernel or the FUSE server reads the image, unless
// Options.NoVerify is set; the objects are not looked at (the verity mode
// governs them), nor the image's digest (ExpectedDigest does).
func CheckImage(r io.ReaderAt, size int64, name string) error {
	rep, err := verify.Image(r, size, verify.Options{MaxProblems: maxListed})
	if err != nil {
		return fmt.Errorf("checking composefs image %s: %w", name, err)
	}
	if rep.OK {
		return nil
	}
	var b strings.Builder
	for i, p := range rep.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	n := len(rep.Problems) + rep.Omitted
	if more := n - len(rep.Problems); more > 0 {
		fmt.Fprintf(&b, "; and %d more (gocfs verify lists them all)", more)
	}
	return fmt.Errorf("%s: %w (%d problem%s): %s", name, ErrInvalidImage, n, plural(n), b.String())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
