//go:build !linux

package verify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// objectStore is Options.Basedir.
type objectStore struct{ dir string }

func openStore(dir string) (*objectStore, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, notDir(dir)
	}
	return &objectStore{dir: dir}, nil
}

func (s *objectStore) close() {}

// open opens the object at rel ("XX/REST") after checking that no
// component of its path is a symbolic link and that it is a regular file
// (this system has no openat2: the checks and the open are not atomic).
func (s *objectStore) open(rel string) (*os.File, error) {
	p := s.dir
	comps := strings.Split(rel, "/")
	for i, c := range comps {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return nil, err
		case fi.Mode()&os.ModeSymlink != 0:
			return nil, errSymlink
		case i == len(comps)-1 && !fi.Mode().IsRegular():
			return nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
		}
	}
	return os.Open(p)
}
