package fsverity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

var algs = []Algorithm{SHA256, SHA512}

// golden holds fs-verity digests of testData(size) computed with Debian's
// `fsverity digest --hash-alg=ALG --block-size=4096 FILE` (fsverity-utils
// 1.5), so that real values are checked even where the tool is missing.
var golden = []struct {
	alg  Algorithm
	size int
	hex  string
}{
	{SHA256, 0, "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"},
	{SHA256, 1, "9a3814b9f4d032cbb46d8ff838aeeae37d81b2dee4b6faa301c1ba4d1a9517f8"},
	{SHA256, 4095, "0f4c6cff9a7b44b9534edb053e5695a99e391bb8ab1af2574797804a103b0703"},
	{SHA256, 4096, "c2636941d0d87f2aef25a1da222796a3ec1d4a2c51907d4ba7d6479939c3a16a"},
	{SHA256, 4097, "9a263d861261e9479271a06eac3630977da48f0092400627976001f2bdbb6344"},
	{SHA256, 64 * 4096, "e072eff5cfdc0a4af95776a3a9eb03181f72ebe5fd50547b718b0550fcec8880"},
	{SHA256, 65 * 4096, "628e9aa3dd283450a33ac07ba39bfa39e7d7b00834d37705561716144bca0d43"},
	{SHA256, 128 * 4096, "02593c49f86db704453d89db762c7b618c18d158500ae30c14f283973c1ed71d"},
	{SHA256, 129 * 4096, "4e1736d11c718455a04d39b16f0e84fb6755067a65a66d50b35764567593e7ca"},
	{SHA256, 1<<20 + 1, "d2bd028d0d957fd2301f1b2b72694f625a01f5721dcde38e03c152e6fe672e85"},
	{SHA256, 64*64*4096 + 1, "d9820f574aab3d3037227382f03d1759e163053518e5ce2e5b70033fd0c9a73c"},
	{SHA256, 128 * 128 * 4096, "c88f6d4089023b292894dfda854c9654b5d5f152904be70338c482e2a7ddd85c"},
	{SHA256, 128*128*4096 + 1, "8e3b5e5820fb37f9377877ed3458bb810962c78b970a752dee6c6ab4db29983b"},
	{SHA512, 0, "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"},
	{SHA512, 1, "b09db9df33b4c0ca9221c6d636be3563fad27c587c4aef280262cc5708e6701f39ed9ec188348803cd30b766a8ba3c9af98879eb8c007707f195d2e84fdf4a2d"},
	{SHA512, 4095, "91ad937a248b5b355b00d4f1e7dbd369f3f6e690ff365d11721860941145c929b9c8c009a4a93f0b5eb9edc2a191ecdcd474dc1d54c47ac0bee0d7d0fe106140"},
	{SHA512, 4096, "f5cf008084c4c1f83b6d5ed26f8e0486009206878fd6956a6537563b20add9d540041396703c433685995208cd35206b857abd781a5aa9f5d61ffe8a2f412a1a"},
	{SHA512, 4097, "dfb91a248168ea307445f9d25ab8060b723f7fdcad6b35799166e84ef7c098dc84e9520a6b7a67b5992431d3ef1509f35792c7d21e5fc9a051120c41f3d31911"},
	{SHA512, 64 * 4096, "d77f77cf8614d0e50608ad2db13875cae96ecd8e1fcad86c9abea9f5ee7eca9910f608ffde52d9edd799e74f69fe90c520d74050664bbaf5ca6a1953b83b020f"},
	{SHA512, 65 * 4096, "19f5e15983246358b5a3903ca9792daba51745ee1d82770cd29dabb6cea783aefb203c0c29a7ed3b9a3b828339df88464c689988ce6ebc1503cf1dcdef40f2a7"},
	{SHA512, 128 * 4096, "d56f21de4add0fe96a6760b8b9d87dc138b6819aae27a5e94161d214aef9675b836163f7179d358487b3b6319fb30b97e58091802cb174f2666eee5be5585913"},
	{SHA512, 129 * 4096, "b5c05eb7806fd89960c9fed81da3ee66391936aedd4d28c7213a3fe1b845d09fd7c4cb969bc4597bd008387da3ad8e2a2ddf375ed1d220a8ae226add201bdf5f"},
	{SHA512, 1<<20 + 1, "9f901bff6217695391b8335726292b0cf5632d18dbbd5884e5ef3f7ef7983eb65e9b00a71cb0595bfe982a80a2c9fde58a90d79f89c562bae23a868bb966e951"},
	{SHA512, 64*64*4096 + 1, "00c3d23fe33188e8f833139aa0ee6acf894376e7e318d8f86c60e03e07abc58a1bc7a1a06c65622300f83f8dcc252d1f5ba0f818749cca40ded6f0a6f92bb7ba"},
	{SHA512, 128 * 128 * 4096, "9be0bf18cdf70db447dc33907bbfc78b760f136fb12188168de94324237c22954233f7b53e52c8ed88470e2d6a08c28cfa7b75162868939e3826e62bc6709fb3"},
	{SHA512, 128*128*4096 + 1, "eb08e30895c7e5100a2418debd82fa4be7f776aea90b74e88c992780e42c4fcac39e20f46f1e59977e876c0694b1aa14f8be9059634c17224ace86e4b0de5322"},
}

// bigSize is the size from which tests skip in -short mode.
const bigSize = 8 << 20

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(fmt.Sprintf("%v/%d", g.alg, g.size), func(t *testing.T) {
			if testing.Short() && g.size > bigSize {
				t.Skip("large input skipped in -short mode")
			}
			data := testData(g.size)
			if got := Hex(Sum(data, g.alg)); got != g.hex {
				t.Errorf("Sum = %s, want %s", got, g.hex)
			}
			// Streaming in 1 MiB + 1 pieces exercises both the
			// aligned and the copying paths.
			h := New(g.alg)
			for p := data; len(p) > 0; {
				n := min(len(p), 1<<20+1)
				h.Write(p[:n])
				p = p[n:]
			}
			if got := Hex(h.Sum(nil)); got != g.hex {
				t.Errorf("streaming = %s, want %s", got, g.hex)
			}
			if g.size <= 2<<20 {
				if got := Hex(refDigest(data, g.alg)); got != g.hex {
					t.Errorf("reference = %s, want %s", got, g.hex)
				}
			}
			d, err := DigestReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), g.alg, 3)
			if err != nil || Hex(d) != g.hex {
				t.Errorf("DigestReaderAt = %x, %v, want %s", d, err, g.hex)
			}
		})
	}
}

// The digest of an empty file is the one published by fsverity-utils.
func TestEmptyFile(t *testing.T) {
	const want = "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
	if got := Hex(Sum(nil, SHA256)); got != want {
		t.Fatalf("Sum(nil) = %s, want %s", got, want)
	}
	h := New(SHA256)
	if r := h.RootHash(nil); !bytes.Equal(r, make([]byte, 32)) {
		t.Errorf("root hash of empty data = %x, want zeros", r)
	}
}

// One block: the root hash is the hash of the (padded) data block.
func TestRootHashSingleBlock(t *testing.T) {
	for _, alg := range algs {
		for _, n := range []int{1, 100, BlockSize} {
			data := testData(n)
			h := New(alg)
			h.Write(data)
			block := make([]byte, BlockSize)
			copy(block, data)
			want := refHash(alg, block)
			if got := h.RootHash(nil); !bytes.Equal(got, want) {
				t.Errorf("%v n=%d: root hash %x, want %x", alg, n, got, want)
			}
		}
	}
}

func refHash(alg Algorithm, b []byte) []byte {
	h := New(alg).h
	h.Write(b)
	return h.Sum(nil)
}

// interestingSizes returns sizes around every tree-shape boundary up to
// three levels for alg.
func interestingSizes(alg Algorithm) []int {
	per := BlockSize / alg.Size()
	var sizes []int
	for _, blocks := range []int{0, 1, 2, 3, per - 1, per, per + 1, 2 * per, 2*per + 1, 3*per + 2} {
		for _, d := range []int{-BlockSize - 1, -BlockSize, -1, 0, 1, BlockSize - 1} {
			if n := blocks*BlockSize + d; n >= 0 {
				sizes = append(sizes, n)
			}
		}
	}
	// The first sizes with three levels.
	return append(sizes, per*per*BlockSize, per*per*BlockSize+1)
}

func TestAgainstReference(t *testing.T) {
	for _, alg := range algs {
		for _, n := range interestingSizes(alg) {
			if testing.Short() && n > bigSize {
				continue
			}
			data := testData(n)
			want := refDigest(data, alg)
			if got := Sum(data, alg); !bytes.Equal(got, want) {
				t.Errorf("%v size %d: Sum = %x, want %x", alg, n, got, want)
			}
			got, err := DigestReaderAt(context.Background(), bytes.NewReader(data), int64(n), alg, 2)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%v size %d: DigestReaderAt = %x, %v, want %x", alg, n, got, err, want)
			}
			got, err = DigestReaderAt(context.Background(), bytes.NewReader(data), int64(n), alg, 1)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%v size %d: DigestReaderAt(1 worker) = %x, %v, want %x", alg, n, got, err, want)
			}
		}
	}
}

func TestStreamingOddWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, alg := range algs {
		for _, n := range []int{0, 1, 4095, 4096, 4097, 3*BlockSize + 17, 129*BlockSize + 5, 1<<20 + 1} {
			data := testData(n)
			want := Sum(data, alg)
			for _, step := range []int{1, 3, 7, 511, 4095, 4097, 65536 + 3, -1} {
				if step == 1 && n > 64<<10 {
					continue
				}
				h := New(alg)
				for p := data; len(p) > 0; {
					k := step
					if k < 0 {
						k = rng.IntN(3*BlockSize) + 1
					}
					k = min(k, len(p))
					if m, err := h.Write(p[:k]); m != k || err != nil {
						t.Fatalf("Write = %d, %v", m, err)
					}
					p = p[k:]
				}
				if got := h.Sum(nil); !bytes.Equal(got, want) {
					t.Errorf("%v size %d step %d: %x, want %x", alg, n, step, got, want)
				}
				if h.Len() != uint64(n) {
					t.Errorf("Len = %d, want %d", h.Len(), n)
				}
			}
		}
	}
}

// Sum must not disturb the state: interleaving Sum calls with writes gives
// the digest of every prefix.
func TestSumDoesNotDisturb(t *testing.T) {
	for _, alg := range algs {
		data := testData(300*BlockSize + 123)
		h := New(alg)
		pos := 0
		for _, k := range []int{0, 1, 4095, 1, 4096 * 127, 4096, 5000, 4096 * 64, 1, 4096*100 + 7, 1 << 30} {
			k = min(k, len(data)-pos)
			h.Write(data[pos : pos+k])
			pos += k
			want := refDigest(data[:pos], alg)
			for range 2 {
				prefix := []byte("prefix")
				got := h.Sum(prefix)
				if !bytes.Equal(got[:6], []byte("prefix")) || !bytes.Equal(got[6:], want) {
					t.Fatalf("%v at %d: Sum = %x, want prefix+%x", alg, pos, got, want)
				}
				_ = h.RootHash(nil)
			}
		}
	}
}

func TestResetAndClone(t *testing.T) {
	for _, alg := range algs {
		a := testData(200*BlockSize + 9)
		b := testData(70*BlockSize + 1)
		h := New(alg)
		h.Write(a)
		c, err := h.Clone()
		if err != nil {
			t.Fatal(err)
		}
		h.Reset()
		h.Write(b)
		if got, want := h.Sum(nil), Sum(b, alg); !bytes.Equal(got, want) {
			t.Errorf("%v after Reset: %x, want %x", alg, got, want)
		}
		if got, want := c.Sum(nil), Sum(a, alg); !bytes.Equal(got, want) {
			t.Errorf("%v clone: %x, want %x", alg, got, want)
		}
		c.Write(b)
		ab := append(append([]byte(nil), a...), b...)
		if got, want := c.Sum(nil), Sum(ab, alg); !bytes.Equal(got, want) {
			t.Errorf("%v clone continued: %x, want %x", alg, got, want)
		}
	}
}

func TestHashInterface(t *testing.T) {
	var h hash.Hash = New(SHA512)
	if h.Size() != 64 || h.BlockSize() != BlockSize {
		t.Errorf("Size, BlockSize = %d, %d", h.Size(), h.BlockSize())
	}
	if New(SHA256).Size() != 32 || New(SHA256).Algorithm() != SHA256 {
		t.Error("SHA256 Hasher: wrong Size or Algorithm")
	}
	if len(h.Sum(nil)) != 64 {
		t.Error("Sum length")
	}
}

func TestNewPanicsOnUnknownAlgorithm(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(0) did not panic")
		}
	}()
	New(0)
}

func TestHashingDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful with -cover or -race")
	}
	data := testData(1 << 20)
	h := New(SHA256)
	out := make([]byte, 0, 32)
	h.Write(data) // let the tree levels be allocated
	allocs := testing.AllocsPerRun(10, func() {
		h.Reset()
		h.Write(data)
		h.Write(data[:100])
		out = h.Sum(out[:0])
	})
	if allocs != 0 {
		t.Errorf("Reset+Write+Sum allocates %v times, want 0", allocs)
	}
}

func TestAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		a    Algorithm
		name string
		size int
	}{{SHA256, "sha256", 32}, {SHA512, "sha512", 64}} {
		if tc.a.String() != tc.name || tc.a.Size() != tc.size || !tc.a.Valid() {
			t.Errorf("%d: String %q Size %d", tc.a, tc.a.String(), tc.a.Size())
		}
		for _, s := range []string{tc.name, strings.ToUpper(tc.name), "SHA-" + tc.name[3:]} {
			if a, err := ParseAlgorithm(s); a != tc.a || err != nil {
				t.Errorf("ParseAlgorithm(%q) = %v, %v", s, a, err)
			}
		}
	}
	if Algorithm(7).String() != "Algorithm(7)" || Algorithm(7).Size() != 0 || Algorithm(0).Valid() {
		t.Error("unknown algorithm: wrong String, Size or Valid")
	}
	for _, s := range []string{"", "md5", "sha1", "sha384", "sha256 "} {
		if _, err := ParseAlgorithm(s); !errors.Is(err, ErrUnknownAlgorithm) {
			t.Errorf("ParseAlgorithm(%q) error = %v", s, err)
		}
	}
}

func TestHex(t *testing.T) {
	for _, alg := range algs {
		d := Sum([]byte("hello"), alg)
		s := Hex(d)
		if s != strings.ToLower(s) || len(s) != 2*alg.Size() {
			t.Errorf("Hex = %q", s)
		}
		for _, in := range []string{s, strings.ToUpper(s)} {
			got, err := ParseHex(in, alg)
			if err != nil || !bytes.Equal(got, d) {
				t.Errorf("ParseHex(%q) = %x, %v", in, got, err)
			}
		}
		bad := []string{"", s[1:], s + "0", s[:len(s)-1] + "g", " " + s[1:], "0x" + s[2:], s[:10] + "-" + s[11:]}
		if alg == SHA256 {
			bad = append(bad, Hex(Sum(nil, SHA512)))
		}
		for _, in := range bad {
			_, err := ParseHex(in, alg)
			if !errors.Is(err, ErrInvalidDigest) || !strings.HasPrefix(err.Error(), "fsverity: ") {
				t.Errorf("ParseHex(%q) error = %v, want ErrInvalidDigest", in, err)
			}
		}
	}
	if _, err := ParseHex("00", 9); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("ParseHex with algorithm 9: %v", err)
	}
	_, err := ParseHex(strings.Repeat("0", 63)+"z", SHA256)
	if err == nil || !strings.Contains(err.Error(), `'z' at offset 63`) {
		t.Errorf("error does not point at the bad digit: %v", err)
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDigestAndDigestFile(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range algs {
		for _, n := range []int{0, 1, 4097, readBufSize, readBufSize + 1, 3*readBufSize + 5} {
			data := testData(n)
			want := refDigest(data, alg)
			p := writeFile(t, dir, fmt.Sprintf("f%d", n), data)

			if got, err := DigestFile(p, alg); err != nil || !bytes.Equal(got, want) {
				t.Errorf("DigestFile(%d bytes, %v) = %x, %v, want %x", n, alg, got, err, want)
			}
			if got, err := DigestFileParallel(context.Background(), p, alg, 0); err != nil || !bytes.Equal(got, want) {
				t.Errorf("DigestFileParallel(%d bytes, %v) = %x, %v, want %x", n, alg, got, err, want)
			}
			// Readers returning odd-sized pieces.
			for name, r := range map[string]io.Reader{
				"plain":    bytes.NewReader(data),
				"onebyte":  iotest.OneByteReader(bytes.NewReader(data[:min(n, 20000)])),
				"half":     iotest.HalfReader(bytes.NewReader(data)),
				"dataeof":  iotest.DataErrReader(bytes.NewReader(data)),
				"multi":    io.MultiReader(bytes.NewReader(data[:n/3]), bytes.NewReader(data[n/3:])),
				"limitedr": io.LimitReader(bytes.NewReader(data), int64(n)),
			} {
				w := want
				if name == "onebyte" {
					w = refDigest(data[:min(n, 20000)], alg)
				}
				if got, err := Digest(r, alg); err != nil || !bytes.Equal(got, w) {
					t.Errorf("Digest(%s, %d bytes, %v) = %x, %v, want %x", name, n, alg, got, err, w)
				}
			}
		}
	}
}

func TestDigestErrors(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	if _, err := Digest(iotest.ErrReader(boom), SHA256); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "fsverity: ") {
		t.Errorf("Digest with failing reader: %v", err)
	}
	// A reader that fails with io.ErrUnexpectedEOF (a truncated
	// stream) must not be taken for a clean end.
	r := io.MultiReader(bytes.NewReader(testData(10)), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := Digest(r, SHA256); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Digest with truncated reader: %v", err)
	}
	if _, err := Digest(bytes.NewReader(nil), 0); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("Digest with algorithm 0: %v", err)
	}

	missing := filepath.Join(dir, "missing")
	for name, f := range map[string]func(string) ([]byte, error){
		"DigestFile": func(p string) ([]byte, error) { return DigestFile(p, SHA256) },
		"DigestFileParallel": func(p string) ([]byte, error) {
			return DigestFileParallel(context.Background(), p, SHA256, 2)
		},
	} {
		_, err := f(missing)
		if !errors.Is(err, fs.ErrNotExist) || err.Error() != "fsverity: open "+missing+": no such file or directory" {
			t.Errorf("%s(missing) = %v", name, err)
		}
		_, err = f(dir)
		if !errors.Is(err, ErrNotRegular) || err.Error() != "fsverity: open "+dir+": not a regular file" {
			t.Errorf("%s(dir) = %v", name, err)
		}
	}
	if _, err := DigestFile(writeFile(t, dir, "x", nil), 3); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("DigestFile with algorithm 3: %v", err)
	}
	if _, err := DigestReaderAt(context.Background(), bytes.NewReader(nil), -1, SHA256, 1); err == nil {
		t.Error("DigestReaderAt with negative size: no error")
	}
}

func TestDigestFileFIFODoesNotBlock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("FIFO behaviour is only guaranteed on Linux")
	}
	p := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(p); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := DigestFile(p, SHA256); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("DigestFile(fifo) = %v, want ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DigestFile blocked on a FIFO")
	}
}

func TestDigestReaderAtShort(t *testing.T) {
	data := testData(5 * 128 * BlockSize)
	for _, workers := range []int{1, 4} {
		_, err := DigestReaderAt(context.Background(), bytes.NewReader(data), int64(len(data))+1, SHA256, workers)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("workers=%d: reading past the end: %v", workers, err)
		}
	}
	// Data past size is ignored.
	got, err := DigestReaderAt(context.Background(), bytes.NewReader(data), 1000, SHA256, 4)
	if err != nil || !bytes.Equal(got, Sum(data[:1000], SHA256)) {
		t.Errorf("prefix: %x, %v", got, err)
	}
}

type failingReaderAt struct {
	r      io.ReaderAt
	failAt int64
	err    error
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.failAt && f.failAt < off+int64(len(p)) {
		return 0, f.err
	}
	return f.r.ReadAt(p, off)
}

func TestDigestReaderAtErrorAndCancel(t *testing.T) {
	data := testData(40 * 128 * BlockSize)
	boom := errors.New("boom")
	for _, workers := range []int{1, 2, 7} {
		r := failingReaderAt{bytes.NewReader(data), 17 * 128 * BlockSize, boom}
		before := runtime.NumGoroutine()
		_, err := DigestReaderAt(context.Background(), r, int64(len(data)), SHA256, workers)
		if !errors.Is(err, boom) {
			t.Errorf("workers=%d: %v, want boom", workers, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = DigestReaderAt(ctx, bytes.NewReader(data), int64(len(data)), SHA256, workers)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("workers=%d: canceled: %v", workers, err)
		}
		// Other goroutines of the test binary come and go: allow the count
		// a moment to settle before calling it a leak.
		after := runtime.NumGoroutine()
		for deadline := time.Now().Add(3 * time.Second); after > before && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			after = runtime.NumGoroutine()
		}
		if after > before {
			t.Errorf("workers=%d: %d goroutines before, %d after: leak", workers, before, after)
		}
	}
}

func TestDigestFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var want [][]byte
	for i := range 23 {
		data := testData(i * 3001)
		paths = append(paths, writeFile(t, dir, fmt.Sprint(i), data))
		want = append(want, refDigest(data, SHA512))
	}
	paths = append(paths, filepath.Join(dir, "missing"), dir)
	for _, workers := range []int{0, 1, 3, 100} {
		got := make([][]byte, len(paths))
		errs := make([]error, len(paths))
		calls := 0
		var active sync.Mutex // detects overlapping calls
		err := DigestFiles(context.Background(), paths, SHA512, workers, func(i int, d []byte, err error) {
			if !active.TryLock() {
				t.Error("overlapping calls to fn")
				return
			}
			defer active.Unlock()
			calls++
			got[i], errs[i] = d, err
		})
		if err != nil {
			t.Fatalf("workers=%d: %v", workers, err)
		}
		if calls != len(paths) {
			t.Errorf("workers=%d: %d calls, want %d", workers, calls, len(paths))
		}
		for i := range want {
			if errs[i] != nil || !bytes.Equal(got[i], want[i]) {
				t.Errorf("workers=%d: file %d: %x, %v, want %x", workers, i, got[i], errs[i], want[i])
			}
		}
		if n := len(want); !errors.Is(errs[n], fs.ErrNotExist) || !errors.Is(errs[n+1], ErrNotRegular) {
			t.Errorf("workers=%d: errors %v, %v", workers, errs[n], errs[n+1])
		}
	}
	if err := DigestFiles(context.Background(), nil, SHA256, 0, nil); err != nil {
		t.Errorf("no paths: %v", err)
	}
	if err := DigestFiles(context.Background(), paths, 5, 0, nil); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("unknown algorithm: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := DigestFiles(ctx, paths, SHA256, 2, func(int, []byte, error) { calls++ })
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("canceled: %v, %d calls", err, calls)
	}

	// Canceled after the first file: with one worker, no other file is
	// started.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls = 0
	err = DigestFiles(ctx, paths, SHA256, 1, func(i int, d []byte, err error) {
		calls++
		if i != 0 || err != nil {
			t.Errorf("call for file %d: %v", i, err)
		}
		cancel()
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("canceled after one file: %v, %d calls", err, calls)
	}
}

func TestMeasureOrCompute(t *testing.T) {
	data := bytes.Repeat([]byte("gocfs measure "), 1000)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(100, io.SeekStart); err != nil { // the file offset must not matter
		t.Fatal(err)
	}
	for _, alg := range []Algorithm{SHA256, SHA512} {
		d, measured, err := MeasureOrCompute(f, alg)
		if err != nil {
			t.Fatal(err)
		}
		if want := Sum(data, alg); !bytes.Equal(d, want) || measured {
			t.Errorf("%v: got %x (measured %v), want %x computed", alg, d, measured, want)
		}
	}
	if _, _, err := MeasureOrCompute(f, 7); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("unknown algorithm: %v", err)
	}
}
