package splitstream

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// The golden files in testdata/golden were written by mkgolden.py from
// cases.json: an implementation of composefs-rs's writer separate from
// this package, compressing with the system's libzstd called as
// composefs-rs calls it (see testdata/golden/README.md).

type goldenOp struct {
	Inline    *string `json:"inline"`
	InlineHex *string `json:"inline_hex"`
	Repeat    int     `json:"repeat"`
	External  string  `json:"external"`
	Size      uint64  `json:"size"`
	ObjectRef string  `json:"object_ref"`
	Named     *string `json:"named"`
	Stream    string  `json:"stream"`
}

type goldenCase struct {
	Name        string          `json:"name"`
	Algorithm   string          `json:"algorithm"`
	ContentType json.RawMessage `json:"content_type"`
	OldLayout   bool            `json:"old_layout"`
	Ops         []goldenOp      `json:"ops"`
}

func loadCases(t testing.TB) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/golden/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func (c *goldenCase) contentType(t testing.TB) ContentType {
	var s string
	if json.Unmarshal(c.ContentType, &s) == nil {
		return ContentType(binary.LittleEndian.Uint64([]byte(s)))
	}
	v, err := strconv.ParseUint(string(c.ContentType), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ContentType(v)
}

func mustDigest(t testing.TB, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// objectContent is the made-up content of an external object of the given
// size, the same every time for the same digest.
func objectContent(d digest.Digest, size uint64) []byte {
	seed := binary.LittleEndian.Uint64(d.Bytes())
	rng := rand.New(rand.NewPCG(seed, size))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// replay writes c with a Writer and returns the file, the content the file
// reassembles to and the objects' contents.
func (c *goldenCase) replay(t testing.TB) (file, content []byte, objects map[digest.Digest][]byte) {
	t.Helper()
	alg, err := fsverity.ParseAlgorithm(c.Algorithm)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(alg, c.contentType(t))
	if err != nil {
		t.Fatal(err)
	}
	objects = map[digest.Digest][]byte{}
	for _, op := range c.Ops {
		err = nil
		switch {
		case op.Inline != nil || op.InlineHex != nil:
			data := []byte(deref(op.Inline))
			if op.InlineHex != nil {
				data, _ = hex.DecodeString(*op.InlineHex)
			}
			data = bytes.Repeat(data, max(op.Repeat, 1))
			content = append(content, data...)
			_, err = w.Write(data)
		case op.External != "":
			d := mustDigest(t, op.External)
			objects[d] = objectContent(d, op.Size)
			content = append(content, objects[d]...)
			err = w.WriteExternal(d, op.Size)
		case op.ObjectRef != "":
			_, err = w.AddObjectRef(mustDigest(t, op.ObjectRef))
		case op.Named != nil:
			err = w.AddNamedStreamRef(*op.Named, mustDigest(t, op.Stream))
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.Finish(&buf); err != nil {
		t.Fatal(err)
	}
	file = buf.Bytes()
	if c.OldLayout {
		file = toOldLayout(t, file)
	}
	return file, content, objects
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// toOldLayout rewrites a current-layout header into the layout composefs-rs
// wrote before #[repr(C)] (splitstream.rs's OldSplitstreamHeader offsets:
// info 0, _flags 16, magic 18, version 29, algorithm 30, lg_blocksize 31);
// the rest of the file is the same in both.
func toOldLayout(t testing.TB, b []byte) []byte {
	t.Helper()
	if string(b[:11]) != "SplitStream" {
		t.Fatal("not a current-layout header")
	}
	out := bytes.Clone(b)
	copy(out[0:16], b[16:32])
	copy(out[16:18], b[12:14])
	copy(out[18:29], b[0:11])
	out[29], out[30], out[31] = b[11], b[14], b[15]
	return out
}

// libzstdIdentical lists the golden cases whose every byte the Writer
// reproduces: each zstd section is either empty (libzstd's fixed 9-byte
// frame) or so small or incompressible that both libzstd and klauspost
// store it as raw blocks, and the Writer writes libzstd's frame header.
// The others differ only inside their compressed blocks.
var libzstdIdentical = map[string]bool{
	"empty": true, "hello": true, "hello-old-layout": true, "coalesced": true,
	"names": true, "object-ref-only": true, "sha512": true,
}

func TestGolden(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			golden, err := os.ReadFile(filepath.Join("testdata/golden", c.Name+".splitstream"))
			if err != nil {
				t.Fatal(err)
			}
			ours, content, objects := c.replay(t)
			g, err := specParse(golden)
			if err != nil {
				t.Fatalf("spec reader on golden file: %v", err)
			}
			o, err := specParse(ours)
			if err != nil {
				t.Fatalf("spec reader on the Writer's file: %v", err)
			}
			if err := specSame(o, g); err != nil {
				t.Fatalf("Writer's file differs from golden outside zstd bytes: %v", err)
			}
			for name, b := range map[string][]byte{"golden": golden, "ours": ours} {
				if err := specLayoutCheck(b, g); name == "golden" && err != nil {
					t.Fatalf("golden layout: %v", err)
				}
				checkReader(t, name, b, c, content, objects)
			}
			if same := bytes.Equal(ours, golden); same != libzstdIdentical[c.Name] {
				t.Errorf("byte-identical to libzstd's file: %v, want %v", same, libzstdIdentical[c.Name])
			}
		})
	}
}

// checkReader reads file with the Reader and checks everything against
// what the case wrote.
func checkReader(t *testing.T, name string, file []byte, c goldenCase, content []byte, objects map[digest.Digest][]byte) {
	t.Helper()
	spec, err := specParse(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer r.Close()
	if r.OldLayout() != c.OldLayout || r.ContentType() != c.contentType(t) || r.StreamSize() != uint64(len(content)) {
		t.Errorf("%s: old %v content type %s size %d", name, r.OldLayout(), r.ContentType(), r.StreamSize())
	}
	if got := digestBytes(r.ObjectRefs()); !bytes.Equal(got, bytes.Join(spec.ObjectRefs, nil)) {
		t.Errorf("%s: object refs differ from the spec reader's", name)
	}
	if got := digestBytes(r.StreamRefs()); !bytes.Equal(got, bytes.Join(spec.StreamRefs, nil)) {
		t.Errorf("%s: stream refs differ from the spec reader's", name)
	}
	named := r.NamedRefs()
	if len(named) != len(spec.Named) {
		t.Errorf("%s: %d named refs, spec reader %d", name, len(named), len(spec.Named))
	}
	for _, nr := range named {
		if i, ok := spec.Named[nr.Name]; !ok || i != nr.Index || !bytes.Equal(nr.Digest.Bytes(), spec.StreamRefs[i]) {
			t.Errorf("%s: named ref %q -> %d, spec reader %d", name, nr.Name, nr.Index, i)
		}
	}
	var out bytes.Buffer
	n, err := r.Reassemble(&out, openFrom(objects))
	if err != nil || n != int64(len(content)) || !bytes.Equal(out.Bytes(), content) {
		t.Errorf("%s: Reassemble = %d, %v; content equal %v", name, n, err, bytes.Equal(out.Bytes(), content))
	}
}
