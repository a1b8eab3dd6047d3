package store_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gocfs/gocfs/store"
)

// Objects are named by the fs-verity digest of their content, and only
// appear once Sync has made them durable.
func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "objects"), store.Options{Create: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	w := s.NewWriter(nil)
	d, err := w.Put([]byte("hello, composefs\n"))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.ObjectPath())
	ok, err := s.Has(d)
	fmt.Println(ok, err)
	// Output:
	// 8d/4f80282e142b8bced5be763b848429b798ad3b06d9d1545a9fa5e73e1bed0c
	// true <nil>
}
