package store

import "github.com/gocfs/gocfs/digest"

// ForceNamedTmp makes s write objects to named temporary files, as on a
// file system without O_TMPFILE.
func ForceNamedTmp(s *Store) { s.noTmpfile.Store(true) }

// SetKernelCopyMin sets the size from which files are copied by the
// kernel, and returns a function restoring it.
func SetKernelCopyMin(n int64) (restore func()) {
	old := kernelCopyMin
	kernelCopyMin = n
	return func() { kernelCopyMin = old }
}

// TmpFiles returns how many temporary files s has created.
func TmpFiles(s *Store) int64 { return s.tmpFiles.Load() }

// SetLinkThroughProc makes temporary files be linked through
// /proc/self/fd (as without CAP_DAC_READ_SEARCH) or by AT_EMPTY_PATH, and
// returns a function restoring the choice.
func SetLinkThroughProc(on bool) (restore func()) {
	old := noEmptyPathLink.Load()
	noEmptyPathLink.Store(on)
	return func() { noEmptyPathLink.Store(old) }
}

// SetMaxIndexedDir sets the largest fanout directory a Writer lists, and
// returns a function restoring it.
func SetMaxIndexedDir(n int64) (restore func()) {
	old := maxIndexedDir
	maxIndexedDir = n
	return func() { maxIndexedDir = old }
}

// KnownAbsent reports whether w's index of names says the store lacks d.
func KnownAbsent(w *Writer, d digest.Digest) bool { return w.names.absent(w.s, d) }
