package repo_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo"
)

func Example() {
	tmp, err := os.MkdirTemp("", "repo-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "rootfs")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("example\n"), 0o644)
	os.WriteFile(filepath.Join(src, "big"), make([]byte, 100000), 0o644)

	ctx := context.Background()
	r, err := repo.Init(filepath.Join(tmp, "repo"), repo.InitOptions{Algorithm: fsverity.SHA256}, repo.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// Store the tree: its file content as objects, then its image, named
	// "os/current".
	res, err := r.CreateImage(ctx, src, "os/current", repo.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("objects stored:", res.NewObjects)

	images, err := r.Images()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("references:", images[0].Refs)

	// r.Mount("os/current", "/mnt", mount.Options{}) would mount it (with
	// the kernel, or else with FUSE; nodev and nosuid; checked first).

	f, err := r.Fsck(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fsck ok:", f.OK())

	// Without its reference, the image and its objects are garbage.
	if err := r.Untag("os/current"); err != nil {
		log.Fatal(err)
	}
	g, err := r.GC(ctx, repo.GCOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed:", len(g.ImagesRemoved), "image,", g.ObjectsRemoved, "objects")
	// Output:
	// objects stored: 1
	// references: [os/current]
	// fsck ok: true
	// removed: 1 image, 2 objects
}
