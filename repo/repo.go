package repo

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/internal/beneath"
	"github.com/gocfs/gocfs/store"
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
	// ErrCorrupt reports content whose digest is not its name (the
	// object store's error).
	ErrCorrupt = store.ErrCorrupt
)

// Meta is the content of meta.json, as composefs-rs defines it.
type Meta struct {
	// Version is the format version (FormatVersion).
	Version int `json:"version"`
	// Algorithm is "fsverity-sha256-12" or "fsverity-sha512-12": the
	// fs-verity hash and log2 of the block size.
	Algorithm string `json:"algorithm"`
	// Features are feature flags; gocfs knows composefs-rs's
	// read-only-compatible FeatureV1EROFS.
	Features Features `json:"features"`
	// ErofsFormats is composefs-rs's EROFS format configuration (absent
	// in repositories made before composefs-rs 0.9 and by earlier gocfs).
	ErofsFormats *ErofsFormats `json:"erofs_formats,omitempty"`
}

// ErofsVersion selects the EROFS format of a repository's images.
type ErofsVersion int

const (
	// ErofsV1 is composefs-rs's V1: the C composefs format with header
	// composefs_version always 1 (mkcomposefs --min-version=1), the
	// default of cfsctl init and so the zero value.
	ErofsV1 ErofsVersion = iota
	// ErofsV0 is mkcomposefs's default (composefs-rs's V0): version 0,
	// raised to 1 only for a tree with whiteouts.
	ErofsV0
)

// ParseErofsVersion parses cfsctl init --erofs-version's values "0" and
// "1" ("" is 1, cfsctl's default; gocfs can't write "2", composefs-rs's
// legacy V2).
func ParseErofsVersion(s string) (ErofsVersion, error) {
	switch s {
	case "0":
		return ErofsV0, nil
	case "1", "":
		return ErofsV1, nil
	}
	return 0, fmt.Errorf("%w: EROFS version %q: gocfs writes 0 or 1", ErrUnsupported, s)
}

// number is meta.json's number of the version.
func (v ErofsVersion) number() int {
	if v == ErofsV0 {
		return 0
	}
	return 1
}

// FeatureV1EROFS is composefs-rs's read-only-compatible feature of a
// repository whose images are V1 EROFS (C composefs compatible, header
// composefs_version 1): known to gocfs, so it does not make the repository
// read-only (known_features::V1_EROFS, crates/composefs/src/repository.rs).
const FeatureV1EROFS = "v1_erofs"

// ErofsFormats is meta.json's "erofs_formats": the EROFS format version of
// the images a repository makes (composefs-rs's FormatConfig,
// crates/composefs/src/erofs/format.rs: 0, 1 or 2), and others it also
// makes.
type ErofsFormats struct {
	Default int   `json:"default"`
	Extra   []int `json:"extra,omitempty"`
}

// ErofsVersion returns the EROFS format version of the repository's images
// as composefs-rs derives it (RepoMetadata::format_config): erofs_formats'
// default when present, else 1 with the v1_erofs feature, else 2.
func (m Meta) ErofsVersion() int {
	switch {
	case m.ErofsFormats != nil:
		return m.ErofsFormats.Default
	case slices.Contains(m.Features.ReadOnlyCompatible, FeatureV1EROFS):
		return 1
	}
	return 2
}

// unknownROCompat returns the read-only-compatible features gocfs does not
// know.
func (f Features) unknownROCompat() []string {
	var out []string
	for _, x := range f.ReadOnlyCompatible {
		if x != FeatureV1EROFS {
			out = append(out, x)
		}
	}
	return out
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
	// Algorithm is the fs-verity digest algorithm; 0 means SHA-512
	// (fsverity-sha512-12), cfsctl init's default.
	Algorithm fsverity.Algorithm
	// ErofsVersion is the EROFS format of the repository's images; the
	// zero value is ErofsV1, cfsctl init's default (ErofsV0 makes
	// mkcomposefs's default images).
	ErofsVersion ErofsVersion
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

	// Everything the repository writes or removes is reached from root,
	// through no symbolic link (see package internal/beneath).
	root   *beneath.Dir
	tmp    *beneath.Dir // tmp/, nil when it can't be used (tmpErr says why)
	tmpErr error
	st     *store.Store // objects/
}

// Init creates a repository at dir (and dir, if needed), or opens the one
// there if it has the same algorithm. It writes meta.json atomically.
func Init(dir string, iopts InitOptions, opts Options) (*Repo, error) {
	alg := iopts.Algorithm
	if alg == 0 {
		alg = fsverity.SHA512
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
	}, ErofsFormats: &ErofsFormats{Default: iopts.ErofsVersion.number()}}
	if iopts.ErofsVersion == ErofsV1 {
		// As composefs-rs's RepoMetadata::new_with_formats: tools that
		// do not know erofs_formats open a V1 repository read-only.
		meta.Features.ReadOnlyCompatible = []string{FeatureV1EROFS}
	}
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

// writeMeta creates meta.json with data, complete or not at all: written
// to a new file under tmp/, synced, given fs-verity if asked (best
// effort), then linked. An existing meta.json is kept (another init won).
func writeMeta(dir string, data []byte, alg fsverity.Algorithm, verity bool) error {
	return writeMetaFile(dir, data, alg, verity, false)
}

// writeMetaFile is writeMeta, replacing an existing meta.json (renamed
// over it, atomically) if replace.
func writeMetaFile(dir string, data []byte, alg fsverity.Algorithm, verity, replace bool) error {
	final := filepath.Join(dir, MetaFile)
	root, err := beneath.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	defer root.Close()
	tmp, err := root.Dir(tmpDir, true)
	if err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	defer tmp.Close()
	name := "meta-" + randomName()
	defer tmp.Remove(name)
	if err := writeNew(tmp, name, data); err != nil {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	if verity {
		if f, err := tmp.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
			_ = fsverity.Enable(f, alg) // best effort: marks a secure repository
			f.Close()
		}
	}
	if replace {
		if err := tmp.Rename(name, root, MetaFile); err != nil {
			return fmt.Errorf("repo: writing %s: %w", final, err)
		}
	} else if err := unix.Linkat(tmp.Fd(), name, root.Fd(), MetaFile, 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("repo: writing %s: %w", final, err)
	}
	return root.Sync()
}

// writeNew writes data to the new file name in dir, mode 0644, synced.
func writeNew(dir *beneath.Dir, name string, data []byte) error {
	f, err := dir.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxMetaSize bounds what is read of meta.json (composefs-rs writes a few
// hundred bytes); a longer one fails to parse instead of filling memory.
const maxMetaSize = 1 << 20

// openMeta opens dir's meta.json, which must be a regular file: it is
// opened without blocking, so that a FIFO in its place is refused rather
// than hanging every command.
func openMeta(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, MetaFile), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: %s is not a regular file", ErrUnsupported, f.Name())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
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
	f, err := openMeta(dir)
	switch {
	case err == nil:
		defer f.Close()
		if err := json.NewDecoder(io.LimitReader(f, maxMetaSize)).Decode(&r.meta); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnsupported, f.Name(), err)
		}
		r.hasMeta = true
		if r.meta.Version > FormatVersion || r.meta.Version < 1 {
			return nil, fmt.Errorf("%w: format version %d (this gocfs knows %d)", ErrUnsupported, r.meta.Version, FormatVersion)
		}
		if len(r.meta.Features.Incompatible) > 0 {
			return nil, fmt.Errorf("%w: %s has incompatible features %q that this gocfs does not know; it refuses to read or write the repository (use a tool that knows them)", ErrUnsupported, dir, r.meta.Features.Incompatible)
		}
		if len(r.meta.Features.unknownROCompat()) > 0 {
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
	if err := r.openDirs(); err != nil {
		return nil, err
	}
	if !r.readOnly {
		if err := r.upgrade(); err != nil {
			r.Close()
			return nil, fmt.Errorf("repo: upgrading %s: %w", dir, err)
		}
		if err := r.runUpgraders(); err != nil {
			r.Close()
			return nil, fmt.Errorf("repo: upgrading %s: %w", dir, err)
		}
	}
	return r, nil
}

// openDirs opens the repository's directories, beneath its own and
// through no symbolic link, and its object store. A bad tmp/ is not an
// error here (gc and fsck report it; what needs it fails).
func (r *Repo) openDirs() (retErr error) {
	root, err := beneath.OpenDir(r.dir)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	defer func() {
		if retErr != nil {
			r.Close()
		}
	}()
	r.root = root
	r.tmp, r.tmpErr = root.Dir(tmpDir, !r.readOnly)
	sopts := store.Options{
		Algorithm:     r.alg,
		ReadOnly:      r.readOnly,
		NoVerity:      r.opts.NoVerity,
		RequireVerity: r.secure,
		TmpDir:        r.tmpDirFile,
		Batch:         maxPending,
		Threads:       r.opts.Threads,
		Notice:        r.opts.Notice,
	}
	objects, err := root.Dir(objectsDir, !r.readOnly)
	if errors.Is(err, fs.ErrNotExist) && r.readOnly {
		// Nothing was ever stored: an empty store.
		sopts.EmptyIfMissing = true
		r.st, err = store.Open(filepath.Join(r.dir, objectsDir), sopts)
		return err
	}
	if err != nil {
		return fmt.Errorf("repo: the object store: %w", err)
	}
	defer objects.Close()
	f, err := objects.File()
	if err != nil {
		return fmt.Errorf("repo: the object store: %w", err)
	}
	defer f.Close()
	if r.st, err = store.OpenDir(f, sopts); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	return nil
}

// tmpDirFile gives the store tmp/ for its named temporary files.
func (r *Repo) tmpDirFile() (*os.File, error) {
	if r.tmp == nil {
		return nil, fmt.Errorf("repo: %s: %w", tmpDir, r.tmpErr)
	}
	return r.tmp.File()
}

// Close releases the repository's directory descriptors. The Repo must
// not be used afterwards.
func (r *Repo) Close() error {
	if r.st != nil {
		r.st.Close()
	}
	if r.tmp != nil {
		r.tmp.Close()
	}
	return r.root.Close()
}

// Store returns the repository's object store (objects/). Writing to it
// directly needs the repository lock (Lock), as NewObjectWriter says.
func (r *Repo) Store() *store.Store { return r.st }

// inferAlgorithm tells a repository's algorithm from the length of its
// objects' names, for repositories without meta.json.
func inferAlgorithm(dir string) (fsverity.Algorithm, error) {
	fanout, err := os.ReadDir(filepath.Join(dir, objectsDir))
	if err != nil {
		return 0, fmt.Errorf("%w: %s has no %s (create it with init)", ErrNotRepository, dir, MetaFile)
	}
	for _, d := range fanout {
		if !d.IsDir() || !digest.IsHex(d.Name(), 2) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, objectsDir, d.Name()))
		if err != nil {
			continue
		}
		for _, e := range ents {
			switch {
			case digest.IsHex(e.Name(), 2*fsverity.SHA256.Size()-2):
				return fsverity.SHA256, nil
			case digest.IsHex(e.Name(), 2*fsverity.SHA512.Size()-2):
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

// ObjectPath returns the path of the object with the given digest.
func (r *Repo) ObjectPath(d digest.Digest) string {
	return filepath.Join(r.dir, objectsDir, d.ObjectPath())
}

// ImagePath returns the path of an image's link under images/.
func (r *Repo) ImagePath(d digest.Digest) string {
	return filepath.Join(r.dir, imagesDir, d.Hex())
}

// ParseObjectRel parses an object path ("XX/REST", as an image's payload
// holds it, a leading slash allowed) of this repository's algorithm.
func (r *Repo) ParseObjectRel(rel string) (digest.Digest, error) {
	d, err := digest.ParseObjectPath(rel)
	if err == nil && d.Algorithm() != r.alg {
		err = fmt.Errorf("%w: %q is not a %s object path", digest.ErrInvalid, rel, r.alg)
	}
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: %w", err)
	}
	return d, nil
}

// ParseDigest parses a hexadecimal digest of this repository's algorithm.
func (r *Repo) ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.ParseAlg(s, r.alg)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("repo: %w", err)
	}
	return d, nil
}

func (r *Repo) writable() error {
	if r.readOnly {
		if u := r.meta.Features.unknownROCompat(); len(u) > 0 {
			return fmt.Errorf("%w: unknown read-only-compatible features %q", ErrReadOnly, u)
		}
		return ErrReadOnly
	}
	return nil
}

// Notice tells the user something through Options.Notice (the commands
// print it on standard error): what an upgrade did, for one.
func (r *Repo) Notice(format string, a ...any) { r.notice(format, a...) }

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
	if err := r.root.Syncfs(); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	return nil
}

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
