package splitstream

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocfs/gocfs/digest"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzReader from the golden and hostile files")

// fuzzObject is every object's content in FuzzReader.
const fuzzObject = "obj"

func fuzzOpen(digest.Digest) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(fuzzObject)), nil
}

// FuzzReader reads any input as a split stream: NewReader, then every
// chunk. It must not panic and must fail only with errors wrapping
// fs.ErrInvalid. A stream it reads whole is written back with the Writer
// and read again, which must give the same content, content type and named
// references. Seeds: the golden files, the hostile table and
// testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	golden, _ := filepath.Glob("testdata/golden/*.splitstream")
	for _, p := range golden {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, h := range hostile {
		if len(h.file) < 1<<16 {
			f.Add(h.file)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("NewReader: %v", err)
			}
			return
		}
		defer r.Close()
		if r.StreamSize() > 16<<20 {
			// Read the chunks without keeping them.
			for _, err = r.Next(); err == nil; _, err = r.Next() {
			}
			if err != io.EOF && !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("Next: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if _, err := r.Reassemble(&out, fuzzOpen); err != nil {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("Reassemble: %v", err)
			}
			return
		}
		rewriteCheck(t, b, r, out.Bytes())
	})
}

// rewriteCheck writes the stream in b back with a Writer, chunk by chunk,
// and checks that the copy reads the same.
func rewriteCheck(t *testing.T, b []byte, r *Reader, content []byte) {
	r2, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("second NewReader: %v", err)
	}
	defer r2.Close()
	w, err := NewWriter(r.Algorithm(), r.ContentType())
	if err != nil {
		t.Fatal(err)
	}
	for _, nr := range r.NamedRefs() {
		must(t, w.AddNamedStreamRef(nr.Name, nr.Digest))
	}
	for {
		c, err := r2.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if c.Inline {
			_, err = io.Copy(w, readerOnly{r2})
		} else {
			err = w.WriteExternal(c.Object, uint64(len(fuzzObject)))
		}
		must(t, err)
	}
	var buf bytes.Buffer
	if _, err := w.Finish(&buf); err != nil {
		t.Fatal(err)
	}
	c, err := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("reading the rewritten stream: %v", err)
	}
	defer c.Close()
	var out bytes.Buffer
	if _, err := c.Reassemble(&out, fuzzOpen); err != nil {
		t.Fatalf("reassembling the rewritten stream: %v", err)
	}
	if !bytes.Equal(out.Bytes(), content) || c.ContentType() != r.ContentType() ||
		namedDigests(c) != namedDigests(r) {
		t.Fatal("the rewritten stream differs")
	}
	if _, err := specParse(buf.Bytes()); err != nil {
		t.Fatalf("spec reader on the rewritten stream: %v", err)
	}
}

// namedDigests lists the names and digests of r's named references; their
// indexes depend on the order the writer met the streams.
func namedDigests(r *Reader) string {
	var s []string
	for _, nr := range r.NamedRefs() {
		s = append(s, fmt.Sprintf("%q=%s", nr.Name, nr.Digest))
	}
	return strings.Join(s, " ")
}

// TestUpdateCorpus rewrites the committed seed corpus when run with
// -update-corpus: the golden files and the hostile table, one file each.
func TestUpdateCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz/FuzzReader")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	must(t, os.MkdirAll(dir, 0o755))
	write := func(name string, b []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	golden, _ := filepath.Glob("testdata/golden/*.splitstream")
	for _, p := range golden {
		b, err := os.ReadFile(p)
		must(t, err)
		write("golden-"+strings.TrimSuffix(filepath.Base(p), ".splitstream"), b)
	}
	for _, h := range hostile {
		if len(h.file) < 1<<16 {
			name := strings.Map(func(r rune) rune {
				if r == ' ' {
					return '-'
				}
				return r
			}, h.name)
			sum := sha256.Sum256(h.file)
			write(fmt.Sprintf("hostile-%s-%x", name, sum[:4]), h.file)
		}
	}
}
