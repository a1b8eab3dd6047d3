package repo

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// StagingFile returns a new file with no name on the repository's file
// system, for data on its way into the repository that is not an object
// yet (a download, say): O_TMPFILE in tmp/, or where the file system lacks
// it a file created in tmp/ and removed at once. No other process can open
// it and it vanishes when closed, so garbage collection, which empties
// tmp/, never has to wait for it: the caller need not hold the repository
// lock while writing it.
func (r *Repo) StagingFile() (*os.File, error) {
	if err := r.writable(); err != nil {
		return nil, err
	}
	if r.tmp == nil {
		return nil, fmt.Errorf("repo: %s: %w", tmpDir, r.tmpErr)
	}
	fd, err := unix.Openat(r.tmp.Fd(), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), r.tmp.Join("(unnamed)")), nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("repo: creating a file in %s: %w", r.tmp.Path(), err)
	}
	name := "staging-" + randomName()
	f, err := r.tmp.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if err := r.tmp.Remove(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("repo: %w", err)
	}
	return f, nil
}
