package erofs_test

import (
	"fmt"
	"io/fs"
	"log"
	"os"

	"github.com/gocfs/gocfs/erofs"
)

// Open an image and list its root directory, "." and ".." included, in
// on-disk order.
func ExampleOpen() {
	f, err := os.Open("testdata/mkfs-default.img")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	img, err := erofs.Open(f, st.Size())
	if err != nil {
		log.Fatal(err)
	}
	root, err := img.Inode(img.RootNid())
	if err != nil {
		log.Fatal(err)
	}
	ents, err := root.ReadDir()
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range ents[:5] {
		in, err := img.Inode(e.Nid)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-6s %06o %d\n", e.Name, in.Mode, in.Size)
	}
	// Output:
	// .      040700 241
	// ..     040700 241
	// big    104755 10000
	// blk    060644 0
	// block  100644 4096
}

// Read files of an image through the io/fs view.
func ExampleImage_FS() {
	f, err := os.Open("testdata/mkfs-chunked.img")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	img, err := erofs.Open(f, st.Size())
	if err != nil {
		log.Fatal(err)
	}
	fsys := img.FS("") // no object store: plain EROFS
	data, err := fs.ReadFile(fsys, "small")
	if err != nil {
		log.Fatal(err)
	}
	target, _ := fsys.ReadLink("link")
	xattrs, _ := fsys.Xattrs("small")
	fmt.Printf("%q %q %s=%s\n", data, target, xattrs[0].FullName(), xattrs[0].Value)
	// Output:
	// "hello\n" "small" user.foo=bar
}
