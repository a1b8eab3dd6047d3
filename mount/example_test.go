package mount_test

import (
	"log"
	"os"

	"github.com/gocfs/gocfs/mount"
)

// Mount an image read-only, with its objects in /composefs/objects, checking
// the image's digest and letting overlayfs check the objects' fs-verity
// digests where the store's file system supports fs-verity.
func ExampleMount() {
	err := mount.Mount("/composefs/images/app.cfs", "/run/app", mount.Options{
		Basedirs:       []string{"/composefs/objects"},
		ExpectedDigest: "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52",
		Verity:         mount.VerityTry,
		Notice:         func(msg string) { log.Print(msg) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer mount.Unmount("/run/app")

	data, err := os.ReadFile("/run/app/etc/os-release")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(data)
}

// Options in the syntax of mount.composefs -o, as in an fstab line.
func ExampleParseOptions() {
	opts, err := mount.ParseOptions(`basedir=/composefs/objects:/extra/objects,ro,upperdir=/var/app/up\,per,workdir=/var/app/work`)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%q %v %q", opts.Basedirs, opts.ReadOnly, opts.UpperDir)
	if err := mount.Mount("/composefs/images/app.cfs", "/run/app", opts); err != nil {
		log.Fatal(err)
	}
}

// Writable: changes go to the upper directory, the image and the object
// store stay as they are.
func ExampleMount_writable() {
	err := mount.Mount("/composefs/images/app.cfs", "/run/app", mount.Options{
		Basedirs: []string{"/composefs/objects"},
		UpperDir: "/var/lib/app/upper",
		WorkDir:  "/var/lib/app/work",
	})
	if err != nil {
		log.Fatal(err)
	}
}
