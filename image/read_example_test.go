package image_test

import (
	"fmt"
	"log"
	"os"

	"github.com/gocfs/gocfs/image"
)

// Read a composefs image back into a tree.
func ExampleRead() {
	f, err := os.Open("testdata/read/hardlinks.img")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	version, err := image.ReadVersion(f)
	if err != nil {
		log.Fatal(err)
	}
	root, err := image.Read(f, st.Size(), image.ReadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", version)
	for _, c := range root.Children {
		if c.LinkTo != nil {
			fmt.Printf("%s: hard link to %s\n", c.Name, c.LinkTo.Path())
			continue
		}
		fmt.Printf("%s: mode %o size %d\n", c.Name, c.Mode, c.Size)
	}
	// Output:
	// version 0
	// a: mode 40755 size 40
	// b: hard link to /a/x
	// c: mode 120777 size 3
	// d: hard link to /c
	// z: hard link to /a/x
}
