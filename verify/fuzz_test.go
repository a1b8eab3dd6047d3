package verify_test

import (
	"bytes"
	"testing"

	"github.com/gocfs/gocfs/verify"
)

// FuzzVerify checks that the verifier survives any input: no panic, no
// error other than for I/O (a bytes.Reader has none), and a report that
// is OK only when it lists no problem. Seeds are the golden images (and
// testdata/fuzz/FuzzVerify).
func FuzzVerify(f *testing.F) {
	for _, b := range seedImages(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		r, err := verify.Image(bytes.NewReader(b), int64(len(b)), verify.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.OK != (len(r.Problems) == 0 && r.Omitted == 0) {
			t.Fatalf("OK %v with %d problems", r.OK, len(r.Problems))
		}
	})
}
