package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/gocfs/gocfs/internal/beneath"
)

// HasMeta reports whether the repository has a meta.json (repositories
// made by composefs-rs before it wrote one have not; Open then takes the
// algorithm from the objects' names).
func (r *Repo) HasMeta() bool { return r.hasMeta }

// Streams lists the split streams as Cat names them, sorted: each
// stream's content identifier (streams/NAME) and, for named streams,
// refs/NAME (streams/refs/NAME). Only the names are read (no lock is
// taken and no link is followed), so it suits shell completion.
func (r *Repo) Streams() ([]string, error) {
	dir, err := r.root.Dir(streamsDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	defer dir.Close()
	var names []string
	if err := listLinks(dir, "", &names); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", streamsDir, err)
	}
	sort.Strings(names)
	return names, nil
}

// listLinks adds prefix + NAME for each symbolic link below dir.
func listLinks(dir *beneath.Dir, prefix string, names *[]string) error {
	ents, err := dir.ReadDir()
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch {
		case e.Type.IsDir():
			sub, err := dir.Dir(e.Name, false)
			if err != nil {
				return err
			}
			err = listLinks(sub, prefix+e.Name+"/", names)
			sub.Close()
			if err != nil {
				return err
			}
		case e.Type&fs.ModeSymlink != 0:
			*names = append(*names, prefix+e.Name)
		}
	}
	return nil
}
