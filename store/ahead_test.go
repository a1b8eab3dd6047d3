package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gocfs/gocfs/store"
)

// With FlushAhead, objects are published in the background as they are
// queued, before any Flush or Sync: each under its digest, whole.
func TestFlushAhead(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "objects"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := st.NewWriter(nil)
	defer w.Abort()
	w.FlushAhead(10_000)
	first, err := w.Put([]byte(fmt.Sprintf("%020000d", 1)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		ok, err := st.Has(first)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the object queued is not published ahead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Below the threshold: queued, published by Sync.
	second, err := w.Put([]byte("small"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if ok, _ := st.Has(second); ok {
		t.Error("an object below the threshold published ahead")
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Has(second); !ok {
		t.Error("Sync did not publish what was queued")
	}
	if n := checkStore(t, st.Dir()); n != 2 {
		t.Errorf("%d objects, want 2", n)
	}
}
