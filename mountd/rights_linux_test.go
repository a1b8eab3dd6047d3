package mountd

import "syscall"

func rights(fds []int) []byte { return syscall.UnixRights(fds...) }
