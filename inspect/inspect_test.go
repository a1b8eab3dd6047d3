package inspect_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gocfs/gocfs/image"
	"github.com/gocfs/gocfs/inspect"
	"github.com/gocfs/gocfs/tree"
)

const goldenDir = "../image/testdata/read"

func readImage(t *testing.T, path string) *tree.Node {
	t.Helper()
	root, err := image.ReadFile(path, image.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGolden compares WriteLs and Objects with upstream composefs-info's
// output for the golden images.
func TestGolden(t *testing.T) {
	imgs, _ := filepath.Glob(goldenDir + "/*.img")
	if len(imgs) < 10 {
		t.Fatal("golden images missing")
	}
	for _, img := range imgs {
		root := readImage(t, img)
		var ls bytes.Buffer
		if err := inspect.WriteLs(&ls, root); err != nil {
			t.Fatal(err)
		}
		var objs inspect.Objects
		objs.Add(root)
		var objOut string
		for _, o := range objs.List() {
			objOut += o + "\n"
		}
		for what, got := range map[string]string{"ls": ls.String(), "objects": objOut} {
			want, err := os.ReadFile(strings.TrimSuffix(img, ".img") + "." + what + ".out")
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s %s: got\n%s\nwant\n%s", what, filepath.Base(img), got, want)
			}
		}
	}
}

func TestMissing(t *testing.T) {
	store := fstest.MapFS{"ab/cd": {}, "ef/gh": {}}
	list := []string{"/ab/cd", "ab/xx", "ef/gh", "/../etc/passwd", "zz/zz"}
	if got, want := inspect.Missing(store, list), []string{"ab/xx", "/../etc/passwd", "zz/zz"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	if got := inspect.Missing(nil, list); !reflect.DeepEqual(got, list) {
		t.Errorf("Missing without a store = %q, want all", got)
	}
}

// List the objects of two images that an object store lacks.
func ExampleMissing() {
	var objs inspect.Objects
	for _, p := range []string{"a.cfs", "b.cfs"} {
		root, err := image.ReadFile(p, image.ReadOptions{})
		if err != nil {
			continue
		}
		objs.Add(root)
	}
	for _, o := range inspect.Missing(os.DirFS("/composefs/objects"), objs.List()) {
		os.Stdout.WriteString(o + "\n")
	}
}
