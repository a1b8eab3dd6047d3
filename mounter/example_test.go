package mounter_test

import (
	"log"

	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/mounter"
)

// Mount an image the best way this system allows, and serve it (when it
// is a FUSE mount) until it is unmounted.
func ExampleMount() {
	m, err := mounter.Mount("/composefs/images/app.cfs", "/run/app", mount.Options{
		Basedirs: []string{"/composefs/objects"},
		Notice:   func(msg string) { log.Print(msg) },
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("mounted with %v", m.Method)
	m.Wait() // returns at once for a kernel mount
}

// A trusted root file system: devices and setuid programs must work.
func ExampleMount_rootfs() {
	_, err := mounter.Mount("/sysroot.cfs", "/sysroot", mount.Options{
		Basedirs:     []string{"/composefs/objects"},
		Verity:       mount.VerityRequire,
		AllowDevices: true,
		AllowSetuid:  true,
		Method:       mount.Kernel,
	})
	if err != nil {
		log.Fatal(err)
	}
}
