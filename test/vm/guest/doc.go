// Package guest holds the tests that run inside gocfs's fs-verity test VM.
//
// They are built only with the vmguest tag, as a static test binary that
// test/vm/run.sh puts into the VM's initramfs together with the gocfs CLI:
//
//	CGO_ENABLED=0 go test -c -tags vmguest -o guest.test ./test/vm/guest
//
// The binary mounts file systems and writes raw bytes to the VM's data disk,
// so it refuses to run anywhere but in that VM (it looks for the
// /gocfs-vm-guest marker the initramfs carries). Run the whole thing with
// `make test-vm`; see test/vm/README.md.
package guest
