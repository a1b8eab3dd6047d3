package splitstream_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/repo/splitstream"
)

func Example() {
	// An object store of one object (a repository would open
	// objects/XX/REST, checked by fs-verity).
	content := "file content kept as an object"
	sum := sha256.Sum256([]byte(content)) // stands in for its fs-verity digest
	obj := digest.MustNew(fsverity.SHA256, sum[:])
	open := func(d digest.Digest) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}

	w, _ := splitstream.NewWriter(fsverity.SHA256, splitstream.ContentTypeOCILayer)
	w.Write([]byte("header|"))
	w.WriteExternal(obj, uint64(len(content)))
	w.Write([]byte("|trailer"))
	var file bytes.Buffer
	w.Finish(&file)

	r, err := splitstream.NewReader(bytes.NewReader(file.Bytes()), int64(file.Len()),
		splitstream.WithContentType(splitstream.ContentTypeOCILayer))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	fmt.Println(r.ContentType(), r.StreamSize(), len(r.ObjectRefs()))
	r.Reassemble(os.Stdout, open)
	fmt.Println()
	// Output:
	// ocilayer 45 1
	// header|file content kept as an object|trailer
}
