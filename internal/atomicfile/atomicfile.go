// Package atomicfile writes a file so that whoever reads it sees its old
// content or its new one, never a part, and so that a failure (or a crash)
// leaves no partial file behind: the content goes to a temporary file in
// the same directory, which is synced and renamed over the path, and then
// the directory is synced so that the new name is durable too.
//
// Usage:
//
//	err := atomicfile.Write("out.cfs", 0o644, func(w io.Writer) error {
//		return image.Write(w, root, opts)
//	})
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CreateError is the error for a temporary file that could not be created
// beside Path (a missing or read-only directory, no permission): the file
// was never written.
type CreateError struct {
	Path string
	Err  error
}

func (e *CreateError) Error() string { return fmt.Sprintf("creating %s: %v", e.Path, e.Err) }

// Unwrap returns the system's error.
func (e *CreateError) Unwrap() error { return e.Err }

// Write replaces the file at path (or creates it) with what write writes,
// with permissions perm, atomically. When write, or anything after it,
// fails, the temporary file is removed and path is left as it was. An
// error from write is returned as it is; the others name path.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) (retErr error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		// Name the file, not the temporary one.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &CreateError{Path: path, Err: err}
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
