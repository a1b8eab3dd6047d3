package splitstream

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// benchStream writes a tar-like stream: per file a 512-byte header inline,
// then either 40 bytes inline (small files) or an object.
func benchStream(tb testing.TB, files int) []byte {
	w := newWriter(tb, ContentTypeOCILayer)
	hdr := make([]byte, 512)
	for i := range files {
		copy(hdr, fmt.Sprintf("usr/share/doc/package-%d/file-%d\x000000644\x00", i/10, i))
		w.Write(hdr)
		if i%3 == 0 {
			must(tb, w.WriteExternal(dg(fmt.Sprint(i)), 4096))
		} else {
			w.Write(bytes.Repeat([]byte{byte(i)}, 40))
		}
	}
	w.Write(make([]byte, 1024))
	return finish(tb, w)
}

func BenchmarkWriter(b *testing.B) {
	b.SetBytes(20000 * 512)
	for b.Loop() {
		benchStream(b, 20000)
	}
}

func BenchmarkNext(b *testing.B) {
	file := benchStream(b, 20000)
	b.SetBytes(20000 * 512)
	b.ReportMetric(float64(len(file)), "file-bytes")
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			b.Fatal(err)
		}
		for {
			c, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if c.Inline {
				io.Copy(io.Discard, readerOnly{r})
			}
		}
		r.Close()
	}
}
