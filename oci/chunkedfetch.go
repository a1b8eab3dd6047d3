package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// rangesPerRequest bounds the byte ranges asked for in one request (the
// Range header stays a few KiB).
const rangesPerRequest = 128

// errNoRanges: the registry answered a range request with the whole
// blob. A pull then fetches the blob whole.
var errNoRanges = errors.New("the registry does not serve byte ranges")

// blobRanges fetches the ranges rs of the blob d names into w (at their
// offsets in the blob), a batch of ranges per request (a multipart
// answer, or one part), each batch tried again as blob is. Nothing but the
// bytes asked for, or parts of the blob that hold them, is taken; what
// they hold is for the caller to check. It returns the bytes received.
func (c *registryClient) blobRanges(ctx context.Context, what string, d v1.Descriptor, rs []byteRange, w io.WriterAt) (int64, error) {
	var total int64
	for len(rs) > 0 {
		batch := rs[:min(len(rs), rangesPerRequest)]
		rs = rs[len(batch):]
		var n int64
		err := withRetries(ctx, c.retries, func() error {
			var err error
			n, err = c.rangesOnce(ctx, what, d, batch, w)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// rangesOnce makes one range request.
func (c *registryClient) rangesOnce(ctx context.Context, what string, d v1.Descriptor, rs []byteRange, w io.WriterAt) (int64, error) {
	spec := make([]string, len(rs))
	for i, r := range rs {
		spec[i] = fmt.Sprintf("%d-%d", r.start, r.end-1)
	}
	resp, err := c.get(ctx, "blobs", d.Digest.String(), http.Header{"Range": {"bytes=" + strings.Join(spec, ",")}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return 0, permanent{errNoRanges}
	default:
		return 0, transport.CheckError(resp, http.StatusPartialContent)
	}
	var got []byteRange
	var n int64
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "multipart/byteranges" {
		mr := multipart.NewReader(resp.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return n, fmt.Errorf("oci: %s: range answer: %w", what, err)
			}
			r, k, err := copyPart(what, d, part.Header.Get("Content-Range"), part, w)
			n += k
			if err != nil {
				return n, err
			}
			got = append(got, r)
		}
	} else {
		r, k, err := copyPart(what, d, resp.Header.Get("Content-Range"), resp.Body, w)
		n += k
		if err != nil {
			return n, err
		}
		got = append(got, r)
	}
	return n, covered(what, rs, got)
}

// copyPart copies one part of a range answer, whose Content-Range is cr,
// into w at its offset.
func copyPart(what string, d v1.Descriptor, cr string, body io.Reader, w io.WriterAt) (byteRange, int64, error) {
	r, ok := parseContentRange(cr, d.Size)
	if !ok {
		return r, 0, permanent{fmt.Errorf("oci: %s: the registry answered with Content-Range %q (the blob is %d bytes)", what, cr, d.Size)}
	}
	n, err := io.Copy(io.NewOffsetWriter(w, r.start), io.LimitReader(body, r.end-r.start))
	if err == nil && n != r.end-r.start {
		err = fmt.Errorf("oci: %s: range %d-%d cut after %d bytes", what, r.start, r.end, n)
	}
	return r, n, err
}

// parseContentRange parses "bytes A-B/SIZE" (B inclusive) of a blob of
// size bytes.
func parseContentRange(s string, size int64) (byteRange, bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	span, total, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return byteRange{}, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || last < start || last >= size {
		return byteRange{}, false
	}
	if total != "*" && total != strconv.FormatInt(size, 10) {
		return byteRange{}, false
	}
	return byteRange{start, last + 1}, true
}

// covered checks that the parts received hold every range asked for.
func covered(what string, want, got []byteRange) error {
	sort.Slice(got, func(i, j int) bool { return got[i].start < got[j].start })
	for _, r := range want {
		i := sort.Search(len(got), func(i int) bool { return got[i].start > r.start }) - 1
		if i < 0 || got[i].end < r.end {
			return fmt.Errorf("oci: %s: the registry's answer lacks bytes %d-%d", what, r.start, r.end)
		}
	}
	return nil
}
