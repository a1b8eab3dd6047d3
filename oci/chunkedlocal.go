package oci

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/gocfs/gocfs/repo"
	"github.com/gocfs/gocfs/tree"
)

// localContent is a file's content the repository has: an object (by its
// digest) or, for a small file, the content itself.
type localContent struct {
	object  []byte
	content []byte
}

// open returns a reader of the content.
func (c *localContent) open(r *repo.Repo) (io.ReadCloser, error) {
	if c.object == nil {
		return io.NopCloser(bytes.NewReader(c.content)), nil
	}
	f, err := openObject(r, c.object)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	return f, nil
}

// pathSize is what finds a zstd:chunked layer's file among the files of
// the layers stored: its path and size (the content found is then
// checked against the TOC's SHA-256).
type pathSize struct {
	path string
	size int64
}

// localFiles indexes the regular files of the layers the repository has,
// for zstd:chunked pulls to find the content they need there.
type localFiles struct {
	r       *repo.Repo
	byPath  map[pathSize]*localContent
	checked map[*localContent][32]byte // SHA-256 of the contents read
}

// indexLocalFiles reads the entries of every layer stored (their split
// streams' tar headers; no file content is read). Layers that can't be
// read are passed over: the index only saves fetching.
func indexLocalFiles(r *repo.Repo) (*localFiles, error) {
	lf := &localFiles{r: r, byPath: make(map[pathSize]*localContent), checked: make(map[*localContent][32]byte)}
	names, err := r.Streams()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, layerStreamPrefix) && !strings.HasPrefix(n, legacyLayerStreamPrefix) {
			continue
		}
		d, err := r.ResolveStream(n)
		if err != nil {
			continue
		}
		entries, err := storedLayer(r, d.Bytes(), nil)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.kind != entryAdd || e.hardlink || e.mode&tree.ModeType != tree.ModeRegular || e.size == 0 {
				continue
			}
			c := &localContent{content: e.content}
			if e.content == nil {
				c.object = e.digest
			}
			lf.byPath[pathSize{e.path, int64(e.size)}] = c
		}
	}
	return lf, nil
}

// find returns the content the repository has for a zstd:chunked file,
// nil if it has none: a stored file of the same path and size whose
// SHA-256 is the one the TOC gives.
func (lf *localFiles) find(f *chunkedFile) *localContent {
	p, err := cleanPath(f.name)
	if err != nil {
		return nil
	}
	c := lf.byPath[pathSize{p, f.size}]
	if c == nil {
		return nil
	}
	sum, ok := lf.checked[c]
	if !ok {
		rc, err := c.open(lf.r)
		if err != nil {
			return nil
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != f.size {
			return nil
		}
		copy(sum[:], h.Sum(nil))
		lf.checked[c] = sum
	}
	if sum != f.sha {
		return nil
	}
	return c
}
