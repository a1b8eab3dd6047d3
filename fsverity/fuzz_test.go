package fsverity

import (
	"bytes"
	"context"
	"testing"
)

// FuzzDigest checks that streaming data through a Hasher in pieces (split
// points taken from splits) gives the same digest as Sum, the parallel
// DigestReaderAt and the naive reference, for both algorithms, and that
// nothing panics. The data is repeated (up to 1 MiB) so that small inputs
// also reach multi-level trees.
func FuzzDigest(f *testing.F) {
	f.Add([]byte(""), []byte(""), uint16(0))
	f.Add([]byte("a"), []byte{1}, uint16(4096))
	f.Add(testData(4097), []byte{0, 255, 16}, uint16(0))
	f.Add([]byte("0123456789abcdef"), []byte{7, 200, 3, 0, 99}, uint16(32768+1))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data, splits []byte, repeat uint16) {
	if len(data) > 0 && repeat > 1 {
		n := min(len(data)*int(repeat), 1<<20)
		data = bytes.Repeat(data, n/len(data)+1)[:n]
	}
	for _, alg := range algs {
		want := Sum(data, alg)
		h := New(alg)
		p, sums := data, 0
		for i := 0; len(p) > 0; i++ {
			k := len(p)
			if len(splits) > 0 {
				// Each split byte is a piece length in units of
				// 1, 64 or 4096 bytes, by position.
				k = int(splits[i%len(splits)]) * []int{1, 64, 4096}[i%3]
				k = min(k, len(p))
			}
			if k == 0 {
				h.Write(nil) // empty writes are fine, but progress is needed
				k = 1
			}
			h.Write(p[:k])
			p = p[k:]
			if i%7 == 3 && sums < 8 {
				h.Sum(nil) // must not disturb the state
				sums++
			}
		}
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("%v: streaming %x != one-shot %x (len %d)", alg, got, want, len(data))
		}
		if len(data) <= 64<<10 {
			if ref := refDigest(data, alg); !bytes.Equal(ref, want) {
				t.Fatalf("%v: Sum %x != reference %x (len %d)", alg, want, ref, len(data))
			}
		}
		got, err := DigestReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), alg, 3)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: DigestReaderAt %x, %v != %x", alg, got, err, want)
		}
	}
}
