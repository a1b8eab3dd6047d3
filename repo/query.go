package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
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
	if err := walkLinks(dir, "", &names); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", streamsDir, err)
	}
	sort.Strings(names)
	return names, nil
}
