// Package schema is the composefs image format's own vocabulary, in one
// place: the overlayfs xattr names an image carries, how a file's own
// trusted.overlay.* xattrs are escaped, the encodings of the redirect and
// metacopy xattrs that point a file at its object, and the fixed rules of
// the image (format versions, the root's whiteouts). The writer (image),
// the reader (image, erofs), the verifier (verify) and the FUSE server
// (fuse) all take them from here, so that they cannot disagree.
//
//	v := schema.AppendMetacopy(nil, d)     // struct ovl_metacopy for digest d
//	d, err := schema.ParseMetacopy(v)      // and back (zero Digest: none)
//	r := schema.AppendRedirect(nil, "ab/cdef…")  // "/ab/cdef…"
//	p, ok := schema.RedirectPayload(r)     // "ab/cdef…", true
//	d, err = schema.ParseRedirect(r)       // the object digest it names
//	schema.Escape("trusted.overlay.opaque") // "trusted.overlay.overlay.opaque"
//
// The facts come from upstream composefs (libcomposefs's writer and
// reader) and the kernel's overlayfs (ovl_check_metacopy_xattr,
// ovl_get_redirect_xattr); this package holds no code of theirs.
//
// Decoders check the value against the rule that names it and return
// errors wrapping [ErrInvalid] (and so [fs.ErrInvalid]); the hostile
// values they quote are shortened with [Shorten].
package schema

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// ErrInvalid is wrapped by every error about a malformed overlay xattr
// value. It wraps [fs.ErrInvalid].
var ErrInvalid = fmt.Errorf("schema: invalid overlay xattr: %w", fs.ErrInvalid)

// Xattr names. overlayfs acts on the trusted.overlay.* names of the layers
// it stacks; composefs images use the first four below for their own
// purpose and store every trusted.overlay.* xattr of the files themselves
// escaped, under [EscapePrefix], which the kernel shows unescaped.
const (
	// OverlayPrefix starts every name overlayfs keeps for itself.
	OverlayPrefix = "trusted.overlay."
	// EscapePrefix starts an escaped name: a file's trusted.overlay.X is
	// stored as trusted.overlay.overlay.X.
	EscapePrefix = OverlayPrefix + "overlay."
	// UserOverlayPrefix starts the names overlayfs uses instead of
	// OverlayPrefix when mounted with userxattr.
	UserOverlayPrefix = "user.overlay."

	// Redirect names a regular file's object: "/" + the object's path in
	// the object store (see [AppendRedirect]).
	Redirect = OverlayPrefix + "redirect"
	// Metacopy marks a regular file whose content is elsewhere, with the
	// object's fs-verity digest (see [AppendMetacopy]).
	Metacopy = OverlayPrefix + "metacopy"
	// Opaque on the root ("y") hides the object store's directories.
	Opaque = OverlayPrefix + "opaque"
	// Whiteout and Whiteouts are overlayfs's whiteout xattrs, which a
	// mounted composefs image shows for the escaped ones it stores.
	Whiteout  = OverlayPrefix + "whiteout"
	Whiteouts = OverlayPrefix + "whiteouts"

	// EscapedWhiteout marks a whiteout of the tree, stored as an empty
	// regular file, so that a mounted image shows it as a whiteout.
	EscapedWhiteout = EscapePrefix + "whiteout"
	// EscapedWhiteouts marks a directory holding such whiteouts.
	EscapedWhiteouts = EscapePrefix + "whiteouts"
	// EscapedOpaque ("x", format version 1) marks a directory holding
	// whiteouts for newer overlayfs.
	EscapedOpaque = EscapePrefix + "opaque"
	// UserWhiteout, UserWhiteouts and UserOpaque are the same marks for
	// overlayfs mounted with userxattr.
	UserWhiteout  = UserOverlayPrefix + "whiteout"
	UserWhiteouts = UserOverlayPrefix + "whiteouts"
	UserOpaque    = UserOverlayPrefix + "opaque"
)

// Xattr values with a fixed meaning.
const (
	// OpaqueRoot is the root's Opaque value.
	OpaqueRoot = "y"
	// OpaqueWhiteoutDir is the EscapedOpaque and UserOpaque value of a
	// directory holding whiteouts.
	OpaqueWhiteoutDir = "x"
)

// Image rules.
const (
	// MaxVersion is the newest composefs format version (the header's
	// composefs_version). Version 1 adds EscapedOpaque and UserOpaque to
	// directories holding whiteouts.
	MaxVersion = 1
	// WhiteoutOpaqueVersion is the first version whose directories holding
	// whiteouts get OpaqueWhiteoutDir marks.
	WhiteoutOpaqueVersion = 1
	// RootWhiteouts is the number of whiteouts the root gets, one for each
	// object-store directory name [RootWhiteoutName] gives, unless the
	// root has an entry of that name, so that a store's directories never
	// show through an image mounted over it.
	RootWhiteouts = 256
)

// RootWhiteoutName returns the name of the root's i-th whiteout: i as two
// lowercase hex digits, 00 to ff.
func RootWhiteoutName(i int) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[i>>4&0xf], hex[i&0xf]})
}

// IsOverlay reports whether name is one of overlayfs's own xattrs,
// escaped or not.
func IsOverlay(name string) bool { return strings.HasPrefix(name, OverlayPrefix) }

// Escape returns the name under which an image stores a file's xattr
// name: trusted.overlay.X becomes trusted.overlay.overlay.X, so that
// overlayfs does not act on it; other names are unchanged.
func Escape(name string) string {
	if IsOverlay(name) {
		return EscapePrefix + name[len(OverlayPrefix):]
	}
	return name
}

// Unescape returns the name a mounted image shows for an xattr stored as
// name: an escaped name without its escape, other names unchanged. shown
// is false for overlayfs's own xattrs (redirect, metacopy, opaque, ...),
// which a mount hides.
func Unescape(name string) (shown string, ok bool) {
	if !IsOverlay(name) {
		return name, true
	}
	if strings.HasPrefix(name, EscapePrefix) {
		return OverlayPrefix + name[len(EscapePrefix):], true
	}
	return "", false
}

// MetacopyHeaderSize is the size of struct ovl_metacopy without its
// digest: version, length, flags, digest algorithm.
const MetacopyHeaderSize = 4

// MaxMetacopySize is the largest metacopy value: the header and a SHA-512
// digest (overlayfs's OVL_METACOPY_MAX_SIZE).
const MaxMetacopySize = MetacopyHeaderSize + fsverity.MaxDigestSize

// AppendMetacopy appends the Metacopy value for a file whose object has
// fs-verity digest d: overlayfs's struct ovl_metacopy (version 0, its own
// length, flags 0, the fs-verity algorithm number, the digest), which
// overlayfs checks the object against with verity=on or require. For the
// zero Digest it appends nothing: the empty value marks a metacopy file
// without a digest. Upstream composefs writes SHA-256 digests only (36
// bytes); a SHA-512 digest gets the 68-byte form overlayfs also checks.
func AppendMetacopy(dst []byte, d digest.Digest) []byte {
	if d.IsZero() {
		return dst
	}
	n := MetacopyHeaderSize + d.Size()
	dst = append(dst, 0, byte(n), 0, byte(d.Algorithm()))
	return d.AppendBytes(dst)
}

// ParseMetacopy decodes a Metacopy value. The empty value, and a bare
// header with algorithm 0, mean a metacopy file without a digest: the zero
// Digest. Anything else must be exactly what [AppendMetacopy] writes:
// version 0, a length field equal to the value's length, no flags, and a
// SHA-256 or SHA-512 digest of that algorithm's size. overlayfs refuses
// values with another version or length; composefs never writes flags or
// an algorithm overlayfs could not check, so those are refused too.
func ParseMetacopy(v []byte) (digest.Digest, error) {
	if len(v) == 0 {
		return digest.Digest{}, nil
	}
	bad := func(format string, a ...any) (digest.Digest, error) {
		return digest.Digest{}, fmt.Errorf("%w: %s: %s", ErrInvalid, Metacopy, fmt.Sprintf(format, a...))
	}
	switch {
	case len(v) < MetacopyHeaderSize:
		return bad("%d bytes, shorter than its %d-byte header", len(v), MetacopyHeaderSize)
	case len(v) > MaxMetacopySize:
		return bad("%d bytes, longer than the %d overlayfs reads", len(v), MaxMetacopySize)
	case v[0] != 0:
		return bad("version %d (overlayfs knows 0)", v[0])
	case int(v[1]) != len(v):
		return bad("length field %d in a %d-byte value", v[1], len(v))
	case v[2] != 0:
		return bad("flags %#x (composefs writes none)", v[2])
	}
	alg := fsverity.Algorithm(v[3])
	if alg == 0 {
		if len(v) != MetacopyHeaderSize {
			return bad("%d digest bytes without an algorithm", len(v)-MetacopyHeaderSize)
		}
		return digest.Digest{}, nil
	}
	if !alg.Valid() {
		return bad("unknown fs-verity algorithm %d", v[3])
	}
	d, err := digest.New(alg, v[MetacopyHeaderSize:])
	if err != nil {
		return bad("%v", err)
	}
	return d, nil
}

// AppendRedirect appends the Redirect value for a file whose content is at
// payload, a path relative to the object store: "/" + payload, as
// upstream joins them (a payload that starts with "/" keeps it, so it
// gets two). An empty payload gets no redirect; callers do not ask for
// one.
func AppendRedirect(dst []byte, payload string) []byte {
	dst = append(dst, '/')
	return append(dst, payload...)
}

// RedirectPayload returns the payload a Redirect value names, the inverse
// of [AppendRedirect]: the value up to its first NUL byte (names are C
// strings to upstream and the kernel), without one leading "/". ok is
// false for a value that names nothing ("", "/", or one that starts with
// NUL): overlayfs refuses such a redirect, and upstream's FUSE server and
// reader find no file for it.
//
// Upstream's reader alone keeps "/" as the payload "/", a side effect of
// stripping the slash only from longer values; that payload would be
// written back as "//", and it names the store's directory, never an
// object, so it is read as no payload here, like "/\x00".
func RedirectPayload(v []byte) (payload string, ok bool) {
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	if len(v) > 0 && v[0] == '/' {
		v = v[1:]
	}
	return string(v), len(v) > 0
}

// ParseRedirect returns the object digest a Redirect value names. The
// value must be exactly what [AppendRedirect] writes for an object of a
// composefs store: "/XX/REST", 64 (SHA-256) or 128 (SHA-512) lowercase
// hex digits in all, no NUL, nothing else.
func ParseRedirect(v []byte) (digest.Digest, error) {
	if len(v) < 2 || v[0] != '/' || v[1] == '/' {
		return digest.Digest{}, fmt.Errorf("%w: %s %q is not \"/\" and an object path", ErrInvalid, Redirect, Shorten(string(v)))
	}
	d, err := digest.ParseObjectPath(string(v[1:]))
	if err != nil {
		return digest.Digest{}, fmt.Errorf("%w: %s %q does not name an object: %w", ErrInvalid, Redirect, Shorten(string(v)), err)
	}
	return d, nil
}

// ShortenLimit is the longest string [Shorten] leaves whole.
const ShortenLimit = 160

// Shorten returns s, or, when s is longer than ShortenLimit bytes, its
// beginning and end around an ellipsis that says how many bytes were left
// out, so that messages quoting a hostile image (a path 10,000 directories
// deep, a 100 KB name) stay short. Cuts fall on UTF-8 character
// boundaries.
func Shorten(s string) string {
	if len(s) <= ShortenLimit {
		return s
	}
	const keep = ShortenLimit/2 - 16
	head := keep
	for head > 0 && !runeStart(s[head]) {
		head--
	}
	tail := len(s) - keep
	for tail < len(s) && !runeStart(s[tail]) {
		tail++
	}
	return fmt.Sprintf("%s…(%d bytes)…%s", s[:head], tail-head, s[tail:])
}

func runeStart(b byte) bool { return b&0xc0 != 0x80 }
