package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// FormatVersion is the repository format version gocfs reads and writes
// (meta.json's "version"), the one composefs-rs defines.
const FormatVersion = 1

// MetaFile is the name of the repository's metadata file.
const MetaFile = "meta.json"

// Directories inside a repository.
const (
	objectsDir = "objects"
	imagesDir  = "images"
	refsDir    = "images/refs"
	streamsDir = "streams"
	tmpDir     = "tmp"
)

// Errors returned by this package (wrapped, with details).
var (
	// ErrNotRepository reports a directory that is not a repository: no
	// meta.json, and no objects to tell the algorithm from.
	ErrNotRepository = errors.New("repo: not a composefs repository")
	// ErrUnsupported reports a repository this gocfs can't use: a newer
	// format version, an unknown incompatible feature, or an algorithm
	// other than fs-verity SHA-256 or SHA-512 with 4096-byte blocks.
	ErrUnsupported = errors.New("repo: unsupported repository")
	// ErrReadOnly reports a write to a repository with unknown
	// read-only-compatible features, or one opened read-only.
	ErrReadOnly = errors.New("repo: repository is read-only for this gocfs")
	// ErrExists reports an init over a repository of another algorithm.
	ErrExists = errors.New("repo: repository exists")
	// ErrNotFound reports an image or reference that is not there.
	ErrNotFound = errors.New("repo: not found")
	// ErrInvalidName reports a reference name that can't be used.
	ErrInvalidName = errors.New("repo: invalid reference name")
	// ErrMissingObjects reports an image that refers to objects the
	// repository does not have; the error is a *MissingObjectsError.
	ErrMissingObjects = errors.New("repo: objects missing")
	// ErrStreams reports a garbage collection refused because the
	// repository holds composefs-rs split streams, whose references gocfs
	// does not follow.
	ErrStreams = errors.New("repo: repository has split streams")
	// ErrCorrupt reports content whose digest is not its name.
	ErrCorrupt = errors.New("repo: corrupt object")
)

// Meta is the content of meta.json, as composefs-rs defines it.
type Meta struct {
	// Version is the format version (FormatVersion).
	Version int `json:"version"`
	// Algorithm is "fsverity-sha256-12" or "fsverity-sha512-12": the
	// fs-verity hash and log2 of the block size.
	Algorithm string `json:"algorithm"`
	// Features are feature flags, none of which gocfs defines.
	Features Features `json:"features"`
}

// Features are a repository's feature flags, in composefs-rs's
// compatible / read-only-compatible / incompatible model.
type Features struct {
	// Compatible features can be ignored by tools that do not know them.
	Compatible []string `json:"compatible"`
	// ReadOnlyCompatible features allow reading by tools that do not know
	// them, but not writing.
	ReadOnlyCompatible []string `json:"read-only-compatible"`
	// Incompatible features make tools that do not know them refuse the
	// repository.
	Incompatible []string `json:"incompatible"`
}

// AlgorithmName returns meta.json's name of alg ("fsverity-sha256-12").
func AlgorithmName(alg fsverity.Algorithm) string {
	return "fsverity-" + alg.String() + "-12"
}

// ParseAlgorithm parses an algorithm as meta.json or cfsctl --hash name it
// ("fsverity-sha512-12"), or as a plain hash name ("sha512").
func ParseAlgorithm(s string) (fsverity.Algorithm, error) {
	name := s
	if rest, ok := strings.CutPrefix(s, "fsverity-"); ok {
		hash, lg, ok := strings.Cut(rest, "-")
		if !ok {
			return 0, fmt.Errorf("%w: algorithm %q: want fsverity-HASH-LGBLOCKSIZE", ErrUnsupported, s)
		}
		if n, err := strconv.Atoi(lg); err != nil || n != 12 {
			return 0, fmt.Errorf("%w: algorithm %q: only 4096-byte blocks (12) are supported", ErrUnsupported, s)
		}
		name = hash
	}
	alg, err := fsverity.ParseAlgorithm(name)
	if err != nil {
		return 0, fmt.Errorf("%w: algorithm %q: %v", ErrUnsupported, s, err)
	}
	return alg, nil
}

// Options control how a repository is opened.
type Options struct {
	// ReadOnly refuses every change to the repository.
	ReadOnly bool
	// NoVerity does not try to enable fs-verity on new objects.
	NoVerity bool
	// Threads bounds parallel work (hashing, copying); <= 0 means the
	// number of CPUs.
	Threads int
	// Progress, when not nil, is told how long operations advance.
	Progress func(Progress)
	// Notice, when not nil, receives messages worth telling a user (a
	// wait for the repository lock, a verity mode not usable).
	Notice func(msg string)
}

// InitOptions control Init.
type InitOptions struct {
	// Algorithm is the fs-verity digest algorithm; 0 means SHA-256.
	Algorithm fsverity.Algorithm
	// Insecure does not enable fs-verity on meta.json. As in
	// composefs-rs, fs-verity on meta.json marks a repository whose
	// objects must all have fs-verity; it is enabled where the file
	// system supports it, unless Insecure.
	Insecure bool
}

// Repo is an open repository. Its methods may be called from several
// goroutines at once.
type Repo struct {
	dir      string
	alg      fsverity.Algorithm
	meta     Meta
	hasMeta  bool
	readOnly bool
	secure   bool // meta.json has fs-verity: objects must have it too
	opts     Options
}

// Init creates a repository at dir (and dir, if needed), or opens the one
// there if it has the same algorithm. It writes meta.json atomically.
func Init(dir string, iopts InitOptions, opts Options) (*Repo, error) {
	alg := iopts.Algorithm
	if alg == 0 {
		alg = fsverity.SHA256
	}
	if !alg.Valid() {
		return nil, fmt.Errorf("%w: algorithm %v", ErrUnsupported, alg)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("repo: creating %s: %w", dir, err)
	}
	if r, err := Open(dir, opts); err == nil {
		if r.alg != alg {
			return nil, fmt.Errorf("%w at %s with algorithm %s, not %s", ErrExists, dir, AlgorithmName(r.alg), AlgorithmName(alg))
		}
		if r.hasMeta {
			return r, nil
		}
		// An old-format repository (objects, no meta.json): record the
		// algorithm its objects use.
	} else if !errors.Is(err, ErrNotRepository) {
		return nil, err
	}
	for _, d := range []string{objectsDir, imagesDir, refsDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("repo: %w", err)
		}
	}
	meta := Meta{Version: FormatVersion, Algorithm: AlgorithmName(alg), Features: Features{
		Compatible: []string{}, ReadOnlyCompatible: []string{}, Incompatible: []string{},
	}}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := writeMeta(dir, data, alg, !iopts.Insecure); err != nil {
		return nil, err
	}
	return Open(dir, opts)
}

// writeMeta creates meta.json with data, complete or not at all: written to
// an unnamed file, synced, given fs-verity if asked (best effort), then
// linked. An existing meta.json is kept (another init won).
func writeMeta(dir string, data []byte, alg fsverity.Algorithm, verity bool) error {
	final := filepath.Join(dir, MetaFile)
	t, err := newTmpFile(dir, filepath.Join(dir, tmpDir))
	if err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	defer t.discard()
	if _, err := t.f.Write(data); err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	if err := t.readOnly(); err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	if verity {
		_ = fsverity.Enable(t.f, alg) // best effort: marks a secure repository
	}
	if err := t.link(final); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	return syncDir(dir)
}

// Open opens the repository at dir. A repository without meta.json (made
// by composefs-rs before it had one) is opened with the algorithm its
// objects' names show.
func Open(dir string, opts Options) (*Repo, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist (create it with init)", ErrNotRepository, dir)
		}
		return nil, fmt.Errorf("repo: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNotRepository, dir)
	}
	r := &Repo{dir: dir, opts: opts, readOnly: opts.ReadOnly}
	f, err := os.Open(filepath.Join(dir, MetaFile))
	switch {
	case err == nil:
		defer f.Close()
		if err := json.NewDecoder(f).Decode(&r.meta); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnsupported, f.Name(), err)
		}
		r.hasMeta = true
		if r.meta.Version > FormatVersion || r.meta.Version < 1 {
			return nil, fmt.Errorf("%w: format version %d (this gocfs knows %d)", ErrUnsupported, r.meta.Version, FormatVersion)
		}
		if len(r.meta.Features.Incompatible) > 0 {
			return nil, fmt.Errorf("%w: unknown incompatible features %q", ErrUnsupported, r.meta.Features.Incompatible)
		}
		if len(r.meta.Features.ReadOnlyCompatible) > 0 {
			r.readOnly = true
		}
		if r.alg, err = ParseAlgorithm(r.meta.Algorithm); err != nil {
			return nil, err
		}
		if alg, _, err := fsverity.Measure(f); err == nil {
			r.secure = true
			if alg != r.alg {
				return nil, fmt.Errorf("%w: meta.json has fs-verity %s, but names %s", ErrUnsupported, alg, r.meta.Algorithm)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		alg, err := inferAlgorithm(dir)
		if err != nil {
			return nil, err
		}
		r.alg = alg
		r.meta = Meta{Version: FormatVersion, Algorithm: AlgorithmName(alg)}
	default:
		return nil, fmt.Errorf("repo: %w", err)
	}
	return r, nil
}

// inferAlgorithm tells a repository's algorithm from the length of its
// objects' names, for repositories without meta.json.
func inferAlgorithm(dir string) (fsverity.Algorithm, error) {
	fanout, err := os.ReadDir(filepath.Join(dir, objectsDir))
	if err != nil {
		return 0, fmt.Errorf("%w: %s has no %s (create it with init)", ErrNotRepository, dir, MetaFile)
	}
	for _, d := range fanout {
		if !d.IsDir() || !isHex(d.Name(), 2) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, objectsDir, d.Name()))
		if err != nil {
			continue
		}
		for _, e := range ents {
			switch {
			case isHex(e.Name(), 2*fsverity.SHA256.Size()-2):
				return fsverity.SHA256, nil
			case isHex(e.Name(), 2*fsverity.SHA512.Size()-2):
				return fsverity.SHA512, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: %s has no %s and no objects to tell its algorithm from (create it with init)", ErrNotRepository, dir, MetaFile)
}

// Dir returns the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// Algorithm returns the repository's fs-verity digest algorithm.
func (r *Repo) Algorithm() fsverity.Algorithm { return r.alg }

// Meta returns the repository's metadata (for a repository without
// meta.json, what it would hold).
func (r *Repo) Meta() Meta { return r.meta }

// Secure reports whether every object must have fs-verity (meta.json has
// it, as composefs-rs marks such repositories).
func (r *Repo) Secure() bool { return r.secure }

// ObjectsDir returns the path of the object store, the basedir of the
// repository's images.
func (r *Repo) ObjectsDir() string { return filepath.Join(r.dir, objectsDir) }

// ObjectRel returns an object's path relative to the object store
// ("XX/REST"), as images name it.
func ObjectRel(digest []byte) string {
	h := fsverity.Hex(digest)
	return h[:2] + "/" + h[2:]
}

// ObjectPath returns the path of the object with the given digest.
func (r *Repo) ObjectPath(digest []byte) string {
	return filepath.Join(r.dir, objectsDir, ObjectRel(digest))
}

// ImagePath returns the path of an image's link under images/.
func (r *Repo) ImagePath(digest []byte) string {
	return filepath.Join(r.dir, imagesDir, fsverity.Hex(digest))
}

// ParseObjectRel parses an object path ("XX/REST", as an image's payload
// holds it, a leading slash allowed) of this repository's algorithm.
func (r *Repo) ParseObjectRel(rel string) ([]byte, error) {
	rel = strings.TrimPrefix(rel, "/")
	n := 2 * r.alg.Size()
	if len(rel) != n+1 || rel[2] != '/' || !isHex(rel[:2], 2) || !isHex(rel[3:], n-2) {
		return nil, fmt.Errorf("repo: %q is not a %s object path (XX/ and %d more lowercase hex digits)", rel, r.alg, n-2)
	}
	return fsverity.ParseHex(rel[:2]+rel[3:], r.alg)
}

// ParseDigest parses a hexadecimal digest of this repository's algorithm.
func (r *Repo) ParseDigest(s string) ([]byte, error) {
	if !isHex(s, 2*r.alg.Size()) {
		return nil, fmt.Errorf("repo: %q is not a %s digest (%d lowercase hex digits)", s, r.alg, 2*r.alg.Size())
	}
	return fsverity.ParseHex(s, r.alg)
}

// isHex reports whether s is n lowercase hexadecimal digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (r *Repo) writable() error {
	if r.readOnly {
		if len(r.meta.Features.ReadOnlyCompatible) > 0 {
			return fmt.Errorf("%w: unknown read-only-compatible features %q", ErrReadOnly, r.meta.Features.ReadOnlyCompatible)
		}
		return ErrReadOnly
	}
	return nil
}

func (r *Repo) notice(format string, a ...any) {
	if r.opts.Notice != nil {
		r.opts.Notice(fmt.Sprintf(format, a...))
	}
}

// Sync makes everything written to the repository's file system durable
// (syncfs).
func (r *Repo) Sync() error { return r.sync() }

// sync makes everything written to the repository's file system durable.
func (r *Repo) sync() error {
	fd, err := unix.Open(r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("repo: syncing %s: %w", r.dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("repo: syncing %s: %w", r.dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
