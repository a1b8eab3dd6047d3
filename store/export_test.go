package store

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
