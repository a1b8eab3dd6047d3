//go:build linux

package fsverity

import (
	"errors"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Enable enables fs-verity on f with alg, 4096-byte Merkle tree blocks and
// no salt or signature (FS_IOC_ENABLE_VERITY). The kernel reads the whole
// file to build the Merkle tree, so this can take a while for a large file.
// Afterwards the file is read-only for good, and [Measure] reports the
// digest [DigestFile] computes.
//
// f must be a regular file opened read-only, and no process may have it open
// for writing (else the error wraps ETXTBSY). If fs-verity is already
// enabled on f (EEXIST), Enable returns nil without checking which algorithm
// was used; use Measure for that.
//
// When the kernel or the file system lacks fs-verity support (EOPNOTSUPP,
// ENOTTY, ENOSYS) the error wraps [ErrNotSupported]. Every error names the
// file and wraps the errno, so errors.Is(err, unix.EOPNOTSUPP) works too.
func Enable(f *os.File, alg Algorithm) error { return EnableSigned(f, alg, nil) }

// EnableSigned is Enable with a builtin signature: sig, a PKCS#7
// signature (DER) of the file's fs-verity digest in the kernel's
// fsverity_formatted_digest form, which the kernel checks against the
// keys of its .fs-verity keyring (CONFIG_FS_VERITY_BUILTIN_SIGNATURES)
// before it enables fs-verity; a nil sig is none. A signature the kernel
// refuses gives an error wrapping the errno (EBADMSG, EKEYREJECTED,
// ENOKEY …); a kernel without builtin signatures gives EOPNOTSUPP or
// EINVAL. Unlike Enable, a file already enabled (EEXIST) is an error
// when sig is given: its signature cannot be added any more.
func EnableSigned(f *os.File, alg Algorithm, sig []byte) error {
	if f == nil {
		return os.ErrInvalid
	}
	if !alg.Valid() {
		return &fileError{op: "enable", path: f.Name(), kind: ErrUnknownAlgorithm, err: errors.New(alg.String())}
	}
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: uint32(alg),
		Block_size:     BlockSize,
	}
	if len(sig) > 0 {
		arg.Sig_size = uint32(len(sig))
		arg.Sig_ptr = uint64(uintptr(unsafe.Pointer(&sig[0])))
	}
	err := ioctl(f, unix.FS_IOC_ENABLE_VERITY, unsafe.Pointer(&arg))
	runtime.KeepAlive(sig)
	if errors.Is(err, unix.EEXIST) && len(sig) == 0 {
		return nil
	}
	if err != nil {
		return ioctlError("enable", f.Name(), err)
	}
	return nil
}

// Measure returns the hash algorithm and the fs-verity digest of f, as
// computed by the kernel when fs-verity was enabled on it
// (FS_IOC_MEASURE_VERITY). f may be opened in any mode.
//
// If fs-verity is not enabled on f (ENODATA), the error wraps
// [ErrNotEnabled]; if the kernel or the file system lacks fs-verity support,
// it wraps [ErrNotSupported]. Every error names the file and wraps the
// errno. A future kernel might report an algorithm this package does not
// know: Measure returns it as is, with its digest.
func Measure(f *os.File) (Algorithm, []byte, error) {
	if f == nil {
		return 0, nil, os.ErrInvalid
	}
	arg := newMeasureArg()
	if err := ioctl(f, unix.FS_IOC_MEASURE_VERITY, unsafe.Pointer(arg)); err != nil {
		return 0, nil, ioctlError("measure", f.Name(), err)
	}
	return arg.result()
}

// MeasureFD is [Measure] of an open descriptor, for callers that hold raw
// descriptors (name is the file's path, for errors).
func MeasureFD(fd int, name string) (Algorithm, []byte, error) {
	arg := newMeasureArg()
	if errno := ioctlFD(uintptr(fd), unix.FS_IOC_MEASURE_VERITY, unsafe.Pointer(arg)); errno != 0 {
		return 0, nil, ioctlError("measure", name, errno)
	}
	return arg.result()
}

// measureArg is struct fsverity_digest { __u16 digest_algorithm; __u16
// digest_size; __u8 digest[]; }, with room for the largest digest.
type measureArg struct {
	hdr    unix.FsverityDigest
	digest [MaxDigestSize]byte
}

// newMeasureArg returns an argument telling the kernel how much room its
// digest has.
func newMeasureArg() *measureArg {
	arg := new(measureArg)
	arg.hdr.Size = uint16(len(arg.digest))
	return arg
}

func (arg *measureArg) result() (Algorithm, []byte, error) {
	n := min(int(arg.hdr.Size), len(arg.digest))
	d := make([]byte, n)
	copy(d, arg.digest[:n])
	return Algorithm(arg.hdr.Algorithm), d, nil
}

// ioctl runs ioctl(2) on f's descriptor with a pointer argument, retrying
// on EINTR.
func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	cerr := rc.Control(func(fd uintptr) { errno = ioctlFD(fd, req, arg) })
	if cerr != nil {
		// RawControl fails only when the file is closed or closing.
		return os.ErrClosed
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// ioctlFD runs ioctl(2) on fd with a pointer argument, retrying on EINTR.
func ioctlFD(fd uintptr, req uint, arg unsafe.Pointer) unix.Errno {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
		if errno != unix.EINTR {
			return errno
		}
	}
}

// ioctlError wraps an error from an fs-verity ioctl, classifying it.
func ioctlError(op, path string, err error) error {
	var kind error
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS):
		kind = ErrNotSupported
	case errors.Is(err, unix.ENODATA):
		kind = ErrNotEnabled
	}
	return newFileError(op, path, kind, err)
}

// openRegular opens path read-only and close-on-exec, and checks that it is
// a regular file. It opens with O_NONBLOCK, so that a FIFO does not block,
// and clears it once the file is known to be regular. It returns the file
// and its size.
func openRegular(path string) (*os.File, int64, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, 0, newFileError("open", path, nil, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, newFileError("stat", path, nil, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, 0, newFileError("open", path, ErrNotRegular, nil)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, 0, newFileError("open", path, nil, err)
	}
	return os.NewFile(uintptr(fd), path), st.Size, nil
}
