package oci

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocfs/gocfs/repo"
)

// member is one tar member of a test layer.
type member struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	mtime    time.Time
	link     string
	content  []byte
	xattrs   map[string]string
	major    int64
	minor    int64
}

// t0 is the base mtime of test members.
var t0 = time.Unix(1700000000, 0)

func dirM(name string, mode int64) member {
	return member{name: name, typ: tar.TypeDir, mode: mode, mtime: t0}
}

func fileM(name string, mode int64, content []byte) member {
	return member{name: name, typ: tar.TypeReg, mode: mode, content: content, mtime: t0}
}

func linkM(name, target string) member {
	return member{name: name, typ: tar.TypeLink, link: target, mtime: t0}
}

func symlinkM(name, target string) member {
	return member{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777, mtime: t0}
}

func whiteoutM(name string) member {
	return member{name: name, typ: tar.TypeReg, mode: 0o644, mtime: t0}
}

func (m member) with(f func(*member)) member { f(&m); return m }

// makeTar builds a tar archive of the members (PAX where needed).
func makeTar(t testing.TB, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := &tar.Header{
			Name: m.name, Typeflag: m.typ, Mode: m.mode, Uid: m.uid, Gid: m.gid,
			ModTime: m.mtime, Linkname: m.link, Size: int64(len(m.content)),
			Devmajor: m.major, Devminor: m.minor,
		}
		if m.typ != tar.TypeReg {
			h.Size = 0
		}
		if len(m.xattrs) > 0 {
			h.PAXRecords = make(map[string]string)
			for k, v := range m.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if m.mtime.Nanosecond() != 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", m.name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(m.content); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randBytes returns n pseudo-random bytes of the given seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6f6369))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// textBytes returns n bytes of compressible pseudo-text.
func textBytes(seed uint64, n int) []byte {
	words := strings.Fields("the quick brown fox jumps over lazy dog composefs layer image object store digest verity overlay erofs tar gzip zstd registry manifest config")
	r := rand.New(rand.NewPCG(seed, 0x74657874))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// newTestRepo creates a repository in a temporary directory.
func newTestRepo(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners, devices, trusted xattrs, mounts)")
	}
}
