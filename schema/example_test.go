package schema_test

import (
	"fmt"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/schema"
)

// A file whose content is object d of the store carries a redirect and a
// metacopy xattr naming d; readers get d back from either.
func Example() {
	d := digest.MustNew(fsverity.SHA256, fsverity.Sum([]byte("hello\n"), fsverity.SHA256))
	redirect := schema.AppendRedirect(nil, d.ObjectPath())
	metacopy := schema.AppendMetacopy(nil, d)
	fmt.Printf("%s=%s\n", schema.Redirect, redirect)
	fmt.Printf("%s=% x…\n", schema.Metacopy, metacopy[:6])

	fromRedirect, _ := schema.ParseRedirect(redirect)
	fromMetacopy, _ := schema.ParseMetacopy(metacopy)
	fmt.Println(fromRedirect == d, fromMetacopy == d)
	fmt.Println(schema.Escape("trusted.overlay.opaque"))
	// Output:
	// trusted.overlay.redirect=/9c/76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa
	// trusted.overlay.metacopy=00 24 00 01 9c 76…
	// true true
	// trusted.overlay.overlay.opaque
}
