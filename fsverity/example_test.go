package fsverity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/gocfs/gocfs/fsverity"
)

func ExampleSum() {
	d := fsverity.Sum(nil, fsverity.SHA256)
	fmt.Println(fsverity.Hex(d))
	// Output: 3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95
}

func ExampleNew() {
	h := fsverity.New(fsverity.SHA256)
	io.WriteString(h, "hello, ")
	io.WriteString(h, "world\n")
	streamed := h.Sum(nil)

	oneShot := fsverity.Sum([]byte("hello, world\n"), fsverity.SHA256)
	fmt.Println(bytes.Equal(streamed, oneShot), len(streamed))
	// Output: true 32
}

func ExampleDigest() {
	d, err := fsverity.Digest(strings.NewReader("hello, world\n"), fsverity.SHA512)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(d), bytes.Equal(d, fsverity.Sum([]byte("hello, world\n"), fsverity.SHA512)))
	// Output: 64 true
}

func ExampleDigestFile() {
	dir, err := os.MkdirTemp("", "fsverity-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "empty")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		log.Fatal(err)
	}

	d, err := fsverity.DigestFile(p, fsverity.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sha256:" + fsverity.Hex(d))
	// Output: sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95
}

func ExampleDigestFiles() {
	dir, err := os.MkdirTemp("", "fsverity-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var paths []string
	for _, name := range []string{"a", "b", "c"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			log.Fatal(err)
		}
		paths = append(paths, p)
	}
	paths = append(paths, filepath.Join(dir, "missing"))

	digests := make([][]byte, len(paths))
	errs := make([]error, len(paths))
	err = fsverity.DigestFiles(context.Background(), paths, fsverity.SHA256, 0, func(i int, d []byte, err error) {
		digests[i], errs[i] = d, err
	})
	if err != nil {
		log.Fatal(err)
	}
	for i := range paths {
		fmt.Println(filepath.Base(paths[i]), len(digests[i]), errors.Is(errs[i], os.ErrNotExist))
	}
	// Output:
	// a 32 false
	// b 32 false
	// c 32 false
	// missing 0 true
}

func ExampleDigestReaderAt() {
	data := bytes.Repeat([]byte("composefs"), 1<<20) // 9 MiB
	d, err := fsverity.DigestReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), fsverity.SHA256, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(bytes.Equal(d, fsverity.Sum(data, fsverity.SHA256)))
	// Output: true
}

func ExampleParseHex() {
	d, err := fsverity.ParseHex("3D248CA542A24FC62D1C43B916EAE5016878E2533C88238480B26128A1F1AF95", fsverity.SHA256)
	fmt.Println(fsverity.Hex(d), err)

	_, err = fsverity.ParseHex("3d248ca5", fsverity.SHA256)
	fmt.Println(err)
	// Output:
	// 3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95 <nil>
	// fsverity: invalid digest: sha256 digest must be 64 hex digits, got 8
}

func ExampleParseAlgorithm() {
	alg, err := fsverity.ParseAlgorithm("sha512")
	fmt.Println(alg, uint8(alg), alg.Size(), err)
	_, err = fsverity.ParseAlgorithm("md5")
	fmt.Println(err)
	// Output:
	// sha512 2 64 <nil>
	// fsverity: unknown hash algorithm: "md5" (want sha256 or sha512)
}

func ExampleEnable() {
	f, err := os.Open("/path/to/object")
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	switch err := fsverity.Enable(f, fsverity.SHA256); {
	case errors.Is(err, fsverity.ErrNotSupported):
		log.Print("no fs-verity here; relying on userspace digests: ", err)
	case err != nil:
		log.Print(err)
	}
}

func ExampleMeasure() {
	f, err := os.Open("/path/to/object")
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	alg, d, err := fsverity.Measure(f)
	switch {
	case errors.Is(err, fsverity.ErrNotEnabled), errors.Is(err, fsverity.ErrNotSupported):
		log.Print("no kernel digest: ", err)
	case err != nil:
		log.Print(err)
	default:
		fmt.Printf("%s:%s\n", alg, fsverity.Hex(d))
	}
}
