package verify_test

import (
	"fmt"
	"log"

	"github.com/gocfs/gocfs/verify"
)

// Check an image before mounting it.
func ExampleFile() {
	r, err := verify.File("../image/testdata/read/redirect-odd.img", verify.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok:", r.OK)
	for _, p := range r.Problems {
		fmt.Println(p)
	}
	// Output:
	// ok: false
	// /f: redirect: redirect /abc is not an object path /XX/<62 or 126 hex digits> (nid 278, offset 0x22f0)
	// /g: redirect: redirect /abcdefg is not an object path /XX/<62 or 126 hex digits> (nid 297, offset 0x2550)
}
