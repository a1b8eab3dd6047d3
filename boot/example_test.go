package boot_test

import (
	"fmt"

	"github.com/gocfs/gocfs/boot"
)

func ExampleParseCmdline() {
	kargs, err := boot.ParseCmdline("root=/dev/vda1 ro composefs=?8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52 quiet")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range kargs {
		fmt.Println(k.Digest.Algorithm(), k.Insecure, k)
	}
	// Output:
	// sha256 true composefs=?8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52
}
