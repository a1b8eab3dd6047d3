package repo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/internal/beneath"
	legacyss "github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo/splitstream"
)

// streamRefsDir holds the named references to split streams.
const streamRefsDir = streamsDir + "/refs"

// CheckStreamName reports whether name can name a split stream
// (streams/NAME): one path component, 1 to 255 bytes, not "refs" (the
// directory of stream references), not starting with ".", no NUL.
func CheckStreamName(name string) error {
	switch {
	case name == "" || len(name) > 255:
		return fmt.Errorf("%w: stream %q: must be 1 to 255 bytes", ErrInvalidName, name)
	case name == "refs" || name[0] == '.' || strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: stream %q: not a single path component", ErrInvalidName, name)
	}
	return nil
}

// streamLinkTarget is what streams/NAME points at: the stream's object.
func streamLinkTarget(d digest.Digest) string {
	return "../" + objectsDir + "/" + d.ObjectPath()
}

// streamRefTarget is what streams/refs/REF points at: streams/STREAM,
// relative to the link.
func streamRefTarget(ref, stream string) string {
	return strings.Repeat("../", strings.Count(ref, "/")+1) + stream
}

// ResolveStream returns the digest of the object holding the split stream
// streams/NAME. A stream that is not there, or whose object is gone, is
// an error wrapping ErrNotFound.
func (r *Repo) ResolveStream(name string) (digest.Digest, error) {
	if err := CheckStreamName(name); err != nil {
		return digest.Digest{}, err
	}
	target, err := r.readlink(streamsDir + "/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return digest.Digest{}, fmt.Errorf("%w: stream %s", ErrNotFound, name)
	}
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: stream %s: %w", name, err)
	}
	rel, ok := strings.CutPrefix(target, "../"+objectsDir+"/")
	if !ok {
		return digest.Digest{}, fmt.Errorf("repo: %s/%s points at %q, not at an object", streamsDir, name, target)
	}
	d, err := r.ParseObjectRel(rel)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: %s/%s: %w", streamsDir, name, err)
	}
	if ok, err := r.st.Has(d); err != nil {
		return digest.Digest{}, fmt.Errorf("repo: stream %s: %w", name, err)
	} else if !ok {
		return digest.Digest{}, fmt.Errorf("%w: stream %s: its object %s is gone", ErrNotFound, name, d)
	}
	return d, nil
}

// ResolveStreamRef returns the name of the split stream that the stream
// reference streams/refs/REF points at, and the stream's digest.
func (r *Repo) ResolveStreamRef(ref string) (string, digest.Digest, error) {
	if err := CheckRefName(ref); err != nil {
		return "", digest.Digest{}, err
	}
	target, err := r.readlink(streamRefsDir + "/" + ref)
	if errors.Is(err, fs.ErrNotExist) {
		return "", digest.Digest{}, fmt.Errorf("%w: stream reference %s", ErrNotFound, ref)
	}
	if err != nil {
		return "", digest.Digest{}, fmt.Errorf("repo: stream reference %s: %w", ref, err)
	}
	stream, err := parseStreamRefTarget(ref, target)
	if err != nil {
		return "", digest.Digest{}, err
	}
	d, err := r.ResolveStream(stream)
	return stream, d, err
}

// parseStreamRefTarget returns the stream streams/refs/REF points at: its
// target, taken relative to the link, must be streams/NAME.
func parseStreamRefTarget(ref, target string) (string, error) {
	p := path.Join(path.Dir(streamRefsDir+"/"+ref), target)
	stream, ok := strings.CutPrefix(p, streamsDir+"/")
	if !ok || strings.HasPrefix(target, "/") || CheckStreamName(stream) != nil {
		return "", fmt.Errorf("repo: %s/%s points at %q, not at a stream (%s/NAME)", streamRefsDir, ref, target, streamsDir)
	}
	return stream, nil
}

// StreamRefs lists the stream references under streams/refs/PREFIX
// (PREFIX "" for all, else a directory such as "oci"), as names relative
// to streams/refs/, sorted. Entries that are not symbolic links are left
// out (Fsck reports them).
func (r *Repo) StreamRefs(prefix string) ([]string, error) {
	rel := streamRefsDir
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		if err := CheckRefName(prefix); err != nil {
			return nil, err
		}
		rel += "/" + prefix
		prefix += "/"
	}
	dir, err := r.root.Dir(rel, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: reading %s: %w", rel, err)
	}
	defer dir.Close()
	var names []string
	if err := walkLinks(dir, prefix, &names); err != nil {
		return nil, fmt.Errorf("repo: reading %s: %w", rel, err)
	}
	sort.Strings(names)
	return names, nil
}

// walkLinks adds the names (prefix + NAME) of the symbolic links under dir.
func walkLinks(dir *beneath.Dir, prefix string, names *[]string) error {
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
			err = walkLinks(sub, prefix+e.Name+"/", names)
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

// OpenObject opens the object d for reading, reached through no symbolic
// link.
func (r *Repo) OpenObject(d digest.Digest) (*os.File, error) {
	f, err := r.st.OpenObject(d)
	if err != nil {
		return nil, fmt.Errorf("repo: object %s: %w", d, err)
	}
	return f, nil
}

// StreamLinks returns what the split stream object d keeps alive, the way
// composefs-rs's garbage collection reads it: the objects it refers to and
// the split streams its named references name. Streams in gocfs's earlier
// format ("gocfs-ss") are read too: their objects and their streams. Only
// the references are read (the header, not the chunks).
func (r *Repo) StreamLinks(d digest.Digest) (objects, streams []digest.Digest, err error) {
	f, err := r.OpenObject(d)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var magic [len(legacyss.Magic)]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && bytes.Equal(magic[:], []byte(legacyss.Magic)) {
		return r.legacyStreamLinks(f, d)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("repo: split stream %s: %w", d, err)
	}
	ss, err := splitstream.NewReader(f, st.Size(), splitstream.WithAlgorithm(r.alg))
	if err != nil {
		return nil, nil, fmt.Errorf("repo: split stream %s: %w", d, err)
	}
	defer ss.Close()
	for _, nr := range ss.NamedRefs() {
		streams = append(streams, nr.Digest)
	}
	return ss.ObjectRefs(), streams, nil
}

// legacyStreamLinks is StreamLinks for a gocfs-ss stream.
func (r *Repo) legacyStreamLinks(f *os.File, d digest.Digest) (objects, streams []digest.Digest, err error) {
	h, err := legacyss.ReadHeader(bufio.NewReader(io.NewSectionReader(f, 0, 1<<62)))
	if err != nil {
		return nil, nil, fmt.Errorf("repo: split stream %s: %w", d, err)
	}
	if h.Algorithm != r.alg {
		return nil, nil, fmt.Errorf("repo: split stream %s: its digests are %s, the repository's %s", d, h.Algorithm, r.alg)
	}
	conv := func(in [][]byte) ([]digest.Digest, error) {
		out := make([]digest.Digest, len(in))
		for i, b := range in {
			if out[i], err = digest.New(r.alg, b); err != nil {
				return nil, fmt.Errorf("repo: split stream %s: %w", d, err)
			}
		}
		return out, nil
	}
	if objects, err = conv(h.Objects); err != nil {
		return nil, nil, err
	}
	streams, err = conv(h.Streams)
	return objects, streams, err
}

// removeLink removes the symbolic link rel (relative to the repository)
// and the directories above it up to top that it leaves empty.
func (r *Repo) removeLink(top, rel string) error {
	dir, base := path.Split(rel)
	parent, err := r.root.Dir(strings.TrimSuffix(dir, "/"), false)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, rel)
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	defer parent.Close()
	st, err := parent.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, rel)
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return fmt.Errorf("repo: %s is not a symbolic link", parent.Join(base))
	}
	if err := parent.Remove(base); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if d := strings.TrimPrefix(path.Dir(rel), top+"/"); d != path.Dir(rel) {
		r.removeEmptyDirs(top, d)
	}
	return nil
}
