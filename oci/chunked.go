package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/gocfs/gocfs/schema"
)

// A zstd:chunked layer (containers/storage, pkg/chunked) is a zstd
// compressed tar archive that any zstd reader decompresses, laid out so
// that parts of it can be fetched alone: every regular file's content
// starts a zstd frame of its own and ends one, and after the archive a
// skippable frame holds a table of contents (TOC), zstd-compressed JSON
// that lists every member with, for regular files, the SHA-256 of the
// content and the bytes of the blob its frames take. The layer's
// descriptor names the TOC: where it is (offset:length:uncompressed
// length:type) and its digest. Whatever lies between two files' frames
// (tar headers, padding, the end of the archive) is frames too, so that
// the archive is rebuilt byte for byte from those frames, decompressed,
// and the files' contents, wherever they come from; the layer's diff ID,
// from the configuration, checks the result.

// Annotations of a zstd:chunked layer's descriptor: the prefix skopeo 1.9
// (containers/storage 1.43) writes, and the one later versions write.
var chunkedAnnotationPrefixes = []string{"io.containers.zstd-chunked.", "io.github.containers.zstd-chunked."}

// Bounds on a TOC.
const (
	maxTOCCompressed = 64 << 20  // compressed TOC, bytes
	maxTOCSize       = 256 << 20 // uncompressed TOC, bytes
	skippableHeader  = 8         // magic and length of a skippable frame
	tocTypeJSON      = 1         // the manifest type of a JSON TOC
)

// chunkedTOCRef is where a zstd:chunked layer's TOC is, from its
// descriptor's annotations.
type chunkedTOCRef struct {
	offset, length, size int64
	checksum             v1.Hash
}

// chunkedRef returns the TOC reference of a layer, ok false if the layer
// is not zstd:chunked. Annotations that are there but malformed are an
// error.
func chunkedRef(d v1.Descriptor) (ref chunkedTOCRef, ok bool, err error) {
	for _, p := range chunkedAnnotationPrefixes {
		sum, hasSum := d.Annotations[p+"manifest-checksum"]
		pos, hasPos := d.Annotations[p+"manifest-position"]
		if !hasSum && !hasPos {
			continue
		}
		if ref.checksum, err = v1.NewHash(sum); err != nil || ref.checksum.Algorithm != "sha256" {
			return ref, false, fmt.Errorf("zstd:chunked annotation %smanifest-checksum %q: not a sha256 digest", p, sum)
		}
		f := strings.Split(pos, ":")
		var n [4]int64
		for i := range f {
			if i < len(n) {
				n[i], err = strconv.ParseInt(f[i], 10, 64)
			}
			if err != nil || len(f) != 4 || n[i] < 0 {
				return ref, false, fmt.Errorf("zstd:chunked annotation %smanifest-position %q: want OFFSET:LENGTH:SIZE:TYPE", p, pos)
			}
		}
		ref.offset, ref.length, ref.size = n[0], n[1], n[2]
		switch {
		case n[3] != tocTypeJSON:
			return ref, false, fmt.Errorf("zstd:chunked TOC of type %d (only %d, JSON, is known)", n[3], tocTypeJSON)
		case ref.length > maxTOCCompressed || ref.size > maxTOCSize:
			return ref, false, fmt.Errorf("%w: zstd:chunked TOC of %d bytes (%d compressed)", ErrTooLarge, ref.size, ref.length)
		case ref.offset < skippableHeader || ref.offset+ref.length > d.Size:
			return ref, false, fmt.Errorf("zstd:chunked TOC at bytes %d-%d of a blob of %d", ref.offset, ref.offset+ref.length, d.Size)
		}
		return ref, true, nil
	}
	return ref, false, nil
}

// tocEntry is a member of a zstd:chunked TOC, as far as a pull needs it.
type tocEntry struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Digest    string `json:"digest"`
	Offset    int64  `json:"offset"`
	EndOffset int64  `json:"endOffset"`
}

// toc is a zstd:chunked layer's table of contents.
type toc struct {
	Version int        `json:"version"`
	Entries []tocEntry `json:"entries"`
}

// parseTOC checks the TOC blob fetched (the skippable frame's header,
// then the TOC) against ref, and decodes it.
func parseTOC(ref chunkedTOCRef, frame []byte) (*toc, error) {
	if int64(len(frame)) != skippableHeader+ref.length {
		return nil, fmt.Errorf("zstd:chunked TOC: got %d bytes, want %d", len(frame), skippableHeader+ref.length)
	}
	magic, n := binary.LittleEndian.Uint32(frame), binary.LittleEndian.Uint32(frame[4:])
	if magic&^0xf != 0x184d2a50 || int64(n) != ref.length {
		return nil, fmt.Errorf("zstd:chunked TOC: no skippable frame of %d bytes at byte %d of the blob", ref.length, ref.offset-skippableHeader)
	}
	blob := frame[skippableHeader:]
	if sum := sha256.Sum256(blob); hex.EncodeToString(sum[:]) != ref.checksum.Hex {
		return nil, fmt.Errorf("%w: zstd:chunked TOC is sha256:%x, its annotation says %s", ErrDigestMismatch, sum, ref.checksum)
	}
	zd, err := zstd.NewReader(bytes.NewReader(blob), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxChunkedWindow))
	if err != nil {
		return nil, err
	}
	defer zd.Close()
	data, err := io.ReadAll(io.LimitReader(zd, ref.size+1))
	if err != nil {
		return nil, fmt.Errorf("zstd:chunked TOC: %w", err)
	}
	if int64(len(data)) != ref.size {
		return nil, fmt.Errorf("zstd:chunked TOC: %d bytes, its annotation says %d", len(data), ref.size)
	}
	var t toc
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("zstd:chunked TOC: %w", err)
	}
	if t.Version != 1 {
		return nil, fmt.Errorf("zstd:chunked TOC version %d (only 1 is known)", t.Version)
	}
	return &t, nil
}

// chunkedFile is a regular file of a zstd:chunked layer with content:
// the blob's bytes [offset, end) decompress to size bytes whose SHA-256
// is sha.
type chunkedFile struct {
	name        string
	size        int64
	sha         [32]byte
	offset, end int64
	// local is the file's content in the repository when it has it (an
	// object, or the content itself); nil means fetch it.
	local *localContent
}

// errTOC is wrapped by the errors about a TOC that does not describe its
// blob.
var errTOC = errors.New("the zstd:chunked TOC does not describe its layer")

// files returns the TOC's regular files with content, in archive order,
// checked to lie in order before the TOC (limit), without overlapping.
func (t *toc) files(limit int64) ([]chunkedFile, error) {
	var fs []chunkedFile
	var last int64
	for _, e := range t.Entries {
		if e.Type != "reg" || e.Size == 0 {
			continue
		}
		f := chunkedFile{name: e.Name, size: e.Size, offset: e.Offset, end: e.EndOffset}
		alg, hx, _ := strings.Cut(e.Digest, ":")
		b, err := hex.DecodeString(hx)
		switch {
		case e.Size < 0:
			err = fmt.Errorf("size %d", e.Size)
		case alg != "sha256" || err != nil || len(b) != 32:
			err = fmt.Errorf("digest %q is not sha256:HEX", e.Digest)
		case e.Offset < last || e.EndOffset <= e.Offset || e.EndOffset > limit:
			err = fmt.Errorf("%w: content at bytes %d-%d, after byte %d and before the TOC at %d", errTOC, e.Offset, e.EndOffset, last, limit)
		}
		if err != nil {
			return nil, fmt.Errorf("zstd:chunked TOC member %q: %w", schema.Shorten(e.Name), err)
		}
		copy(f.sha[:], b)
		last = e.EndOffset
		fs = append(fs, f)
	}
	return fs, nil
}

// byteRange is the bytes [start, end) of a blob.
type byteRange struct{ start, end int64 }

// chunkedRanges returns the parts of the blob to fetch, merged where they
// touch: everything before the TOC's skippable frame (limit) except the
// content of the files the repository has.
func chunkedRanges(files []chunkedFile, limit int64) []byteRange {
	var rs []byteRange
	add := func(a, b int64) {
		if a == b {
			return
		}
		if n := len(rs); n > 0 && rs[n-1].end == a {
			rs[n-1].end = b
			return
		}
		rs = append(rs, byteRange{a, b})
	}
	var pos int64
	for _, f := range files {
		add(pos, f.offset)
		if f.local == nil {
			add(f.offset, f.end)
		}
		pos = f.end
	}
	add(pos, limit)
	return rs
}
