package repo

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	legacyss "github.com/gocfs/gocfs/oci/splitstream"
	"github.com/gocfs/gocfs/repo/splitstream"
)

// putObject stores data as an object of r.
func putObject(t *testing.T, tx *Tx, data string) digest.Digest {
	t.Helper()
	d, err := tx.Objects().Put([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newStream returns a composefs-rs split stream writer holding obj and
// naming the streams in named.
func newStream(t *testing.T, alg fsverity.Algorithm, obj digest.Digest, named map[string]digest.Digest) *splitstream.Writer {
	t.Helper()
	w, err := splitstream.NewWriter(alg, splitstream.ContentTypeOCILayer)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("inline"))
	if err := w.WriteExternal(obj, 4); err != nil {
		t.Fatal(err)
	}
	for n, d := range named {
		if err := w.AddNamedStreamRef(n, d); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// Garbage collection keeps what stream references keep: the streams, the
// objects they refer to and the streams their named references name, in
// composefs-rs's format and gocfs's earlier one; and drops the rest.
func TestGCStreams(t *testing.T) {
	for _, alg := range algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			r := newRepo(t, alg)
			var objs [5]digest.Digest
			err := r.Update(ctx, func(tx *Tx) error {
				for i := range objs {
					objs[i] = putObject(t, tx, "object "+string(rune('a'+i)))
				}
				child, err := tx.PutStream("child", newStream(t, alg, objs[0], nil))
				if err != nil {
					return err
				}
				if _, err := tx.PutStream("parent", newStream(t, alg, objs[1], map[string]digest.Digest{"c": child, "composefs.image.v1": objs[4]})); err != nil {
					return err
				}
				if _, err := tx.PutStream("orphan", newStream(t, alg, objs[2], nil)); err != nil {
					return err
				}
				lw := legacyss.NewWriter(alg, legacyss.TarLayer)
				lw.Write([]byte("x"))
				if err := lw.WriteObject(objs[3].Bytes(), 8); err != nil {
					return err
				}
				var buf bytesBuffer
				if _, err := lw.Finish(&buf, [32]byte{}); err != nil {
					return err
				}
				if _, err := tx.PutStreamBytes("legacy", buf.b); err != nil {
					return err
				}
				if err := tx.SetStreamRef("a/b%2Fc", "parent"); err != nil {
					return err
				}
				return tx.SetStreamRef("old/nested/name", "legacy")
			})
			if err != nil {
				t.Fatal(err)
			}
			refs, err := r.StreamRefs("")
			if err != nil || !slices.Equal(refs, []string{"a/b%2Fc", "old/nested/name"}) {
				t.Fatalf("StreamRefs: %q, %v", refs, err)
			}
			if name, _, err := r.ResolveStreamRef("old/nested/name"); err != nil || name != "legacy" {
				t.Fatalf("ResolveStreamRef: %q, %v", name, err)
			}
			g, err := r.GC(ctx, GCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// kept: objects a, b, d, e (named by parent, not a stream:
			// kept, not walked) and streams child, parent, legacy;
			// removed: object c and the orphan stream.
			if g.ObjectsKept != 7 || g.ObjectsRemoved != 2 || !slices.Equal(g.StreamsPruned, []string{"streams/orphan"}) {
				t.Errorf("GC: %+v", g)
			}
			for _, name := range []string{"child", "parent", "legacy"} {
				if _, err := r.ResolveStream(name); err != nil {
					t.Errorf("stream %s: %v", name, err)
				}
			}
			fsckClean(t, r)

			// A kept stream that can't be read stops gc: nothing removed.
			d, _ := r.ResolveStream("child")
			os.Chmod(r.ObjectPath(d), 0o644)
			if err := os.WriteFile(r.ObjectPath(d), []byte("not a split stream"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := r.GC(ctx, GCOptions{}); err == nil {
				t.Errorf("GC over an unreadable kept stream: no error")
			}
			if _, err := os.Stat(r.ObjectPath(objs[0])); err != nil {
				t.Errorf("GC removed an object after failing: %v", err)
			}
		})
	}
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }

// An update whose function fails names nothing.
func TestUpdateFails(t *testing.T) {
	r := newRepo(t, fsverity.SHA256)
	boom := errors.New("boom")
	err := r.Update(ctx, func(tx *Tx) error {
		obj := putObject(t, tx, "content")
		if _, err := tx.PutStream("s", newStream(t, r.Algorithm(), obj, nil)); err != nil {
			return err
		}
		if err := tx.SetStreamRef("r", "s"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	for _, p := range []string{"streams/s", "streams/refs/r"} {
		if _, err := os.Lstat(filepath.Join(r.Dir(), p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a failed update: %v", p, err)
		}
	}
	if _, err := r.ResolveStream("s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveStream after a failed update: %v", err)
	}
	if err := r.Update(ctx, func(tx *Tx) error { return tx.SetStreamRef("../x", "s") }); !errors.Is(err, ErrInvalidName) {
		t.Errorf("SetStreamRef ../x: %v", err)
	}
	if err := r.Update(ctx, func(tx *Tx) error { _, err := tx.PutStreamBytes("a/b", nil); return err }); !errors.Is(err, ErrInvalidName) {
		t.Errorf("PutStreamBytes a/b: %v", err)
	}
}
