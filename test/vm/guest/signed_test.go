//go:build vmguest && linux

package guest

// Issue 16 in the kernel: an image stored with its fs-verity builtin
// signature under fs.verity.require_signatures mounts and reads; the same
// image with a corrupted signature cannot be enabled. The certificate is
// put into the kernel's .fs-verity keyring with add_key(2) (busybox has no
// keyctl).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/oci"
	"github.com/gocfs/gocfs/oci/seal"
	"github.com/gocfs/gocfs/repo"
)

const requireSignatures = "/proc/sys/fs/verity/require_signatures"

func TestSignedImage(t *testing.T) {
	ctx := context.Background()
	base := filepath.Join(dataDir, "signed")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	keyring := fsverityKeyring(t)
	id, err := unix.AddKey("asymmetric", "", signer.Cert.Raw, keyring)
	if err != nil {
		t.Fatalf("add_key asymmetric to .fs-verity: %v", err)
	}
	t.Cleanup(func() { unix.KeyctlInt(unix.KEYCTL_UNLINK, id, keyring, 0, 0) })

	// Sealed and signed (inline) into an OCI layout, before signatures
	// are required: the builder's own repository is unsigned.
	lay := filepath.Join(base, "layout")
	writeLayout(t, lay, "v1")
	builder := newGuestRepo(t, filepath.Join(base, "builder"))
	sres, err := seal.Seal(ctx, builder, "oci:"+lay+":v1", "oci:"+lay+":sealed", oci.PullOptions{Name: "v1"}, signer)
	if err != nil {
		t.Fatal(err)
	}

	setRequireSignatures(t, "1")
	r := newGuestRepo(t, filepath.Join(base, "repo"))
	_, vres, err := seal.Pull(ctx, r, "oci:"+lay+":sealed", seal.PullOptions{Mode: seal.VerifySigned, Cert: signer.Cert, PullOptions: oci.PullOptions{Name: "app"}})
	if err != nil {
		t.Fatal(err)
	}
	img := r.ImagePath(vres.Merged)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	alg, got, err := fsverity.Measure(f)
	f.Close()
	if err != nil || alg != vres.Merged.Algorithm() || !bytes.Equal(got, vres.Merged.Bytes()) {
		t.Fatalf("the stored image: fs-verity %s %x, %v; want %s (enabled with its signature)", alg, got, err, sres.Digests.Merged)
	}
	// The config's object got its (inline) signature too: under
	// require_signatures it could not have fs-verity otherwise.
	_, config, _, err := oci.Manifest(r, "app")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := r.OpenObject(seal.BytesDigest(config, vres.Merged.Algorithm()))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = fsverity.Measure(cf)
	cf.Close()
	if err != nil {
		t.Errorf("the config's object has no fs-verity (its signature was not attached): %v", err)
	}
	mnt := filepath.Join(base, "mnt")
	mkdirMountpoint(t, mnt)
	m, _, err := seal.Mount(ctx, r, "app", mnt, seal.MountOptions{Mode: seal.VerifySigned, Cert: signer.Cert, Mount: mount.Options{Verity: mount.VerityOff}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(mnt, "app/hello"))
	m.Unmount()
	if err != nil || string(data) != "hello v1\n" {
		t.Fatalf("read app/hello: %q, %v", data, err)
	}

	// The same image with a corrupted signature: the kernel refuses to
	// enable fs-verity; unsigned, require_signatures refuses it too.
	sig := vres.Signatures[seal.RoleMerged]
	bad := bytes.Clone(sig)
	bad[len(bad)-1] ^= 0xff
	for _, c := range []struct {
		name string
		sig  []byte
	}{{"corrupted", bad}, {"unsigned", nil}} {
		cp := copyFile(t, img, filepath.Join(base, "copy-"+c.name))
		err := fsverity.EnableSigned(cp, vres.Merged.Algorithm(), c.sig)
		_, _, merr := fsverity.Measure(cp)
		cp.Close()
		if err == nil || !errors.Is(merr, fsverity.ErrNotEnabled) {
			t.Errorf("%s signature: enable gave %v, measure %v; want refused and not enabled", c.name, err, merr)
		} else {
			t.Logf("%s signature refused as it should: %v", c.name, err)
		}
	}
	// The good signature on a fresh copy: accepted.
	cp := copyFile(t, img, filepath.Join(base, "copy-good"))
	if err := fsverity.EnableSigned(cp, vres.Merged.Algorithm(), sig); err != nil {
		t.Errorf("the good signature on a copy: %v", err)
	}
	cp.Close()
}

// newSigner makes an RSA key and its self-signed certificate.
func newSigner(t *testing.T) *seal.KeySigner {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(16), Subject: pkix.Name{CommonName: "gocfs vm signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &seal.KeySigner{Cert: cert, Key: key}
}

// fsverityKeyring returns the serial of the kernel's .fs-verity keyring,
// from /proc/keys.
func fsverityKeyring(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 9 && fields[7] == "keyring" && strings.HasPrefix(fields[8], ".fs-verity") {
			id, err := strconv.ParseInt(fields[0], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(id)
		}
	}
	t.Fatal("no .fs-verity keyring in /proc/keys (CONFIG_FS_VERITY_BUILTIN_SIGNATURES?)")
	return 0
}

func setRequireSignatures(t *testing.T, v string) {
	t.Helper()
	if err := os.WriteFile(requireSignatures, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(requireSignatures, []byte("0"), 0o644) })
}

func newGuestRepo(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.Init(dir, repo.InitOptions{Insecure: true}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The repository holds descriptors of its directories on the data
	// disk: left open, they keep /mnt/data busy and the package suite
	// after this binary cannot mount it again.
	t.Cleanup(func() { r.Close() })
	return r
}

// writeLayout writes a one-layer image of small (inline) files only, so
// that its composefs image is its only fs-verity file, tagged tag.
func writeLayout(t *testing.T, dir, tag string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)},
		{Name: "app/hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 9, ModTime: time.Unix(1700000000, 0)},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			io.WriteString(tw, "hello "+tag+"\n")
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{"org.opencontainers.image.ref.name": tag}
	if err := p.ReplaceImage(img, match.Annotation("org.opencontainers.image.ref.name", tag), layout.WithAnnotations(ann)); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies src to dst and opens the copy read-only.
func copyFile(t *testing.T, src, dst string) *os.File {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
