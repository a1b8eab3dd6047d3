package scan

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocfs/gocfs/fsverity"
)

// benchCacheEntries is about the number of files of /usr that a digest
// cache of it holds.
const benchCacheEntries = 130_000

// benchStats returns n file statuses of one device, old enough to be
// cached, with inode numbers in no order.
func benchStats(n int) []unix.Stat_t {
	r := rand.New(rand.NewPCG(1, 2))
	sts := make([]unix.Stat_t, n)
	for i := range sts {
		st := &sts[i]
		st.Dev = 0x10302
		st.Ino = uint64(i+1) * 2654435761 % (1 << 32) // distinct
		st.Mode = unix.S_IFREG | 0o644
		st.Size = 4096 + int64(r.IntN(1<<20))
		st.Mtim = unix.Timespec{Sec: 1_700_000_000 + int64(i), Nsec: int64(r.IntN(1e9))}
		st.Ctim = unix.Timespec{Sec: 1_700_000_000 + int64(i), Nsec: int64(r.IntN(1e9))}
	}
	return sts
}

// writeBenchCache writes a digest cache of the files of status sts.
func writeBenchCache(b testing.TB, path string, sts []unix.Stat_t) {
	c, err := OpenDigestCache(path, fsverity.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	for i := range sts {
		c.add(&sts[i], benchDigest(i), true)
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDigestCacheOpen opens a cache of benchCacheEntries files
// ("open"), and also looks each of them up, as a second scan of /usr does
// ("lookup").
func BenchmarkDigestCacheOpen(b *testing.B) {
	sts := benchStats(benchCacheEntries)
	path := filepath.Join(b.TempDir(), "cache")
	writeBenchCache(b, path, sts)
	for _, name := range []string{"open", "lookup"} {
		n := 0 // files looked up
		if name == "lookup" {
			n = len(sts)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := OpenDigestCache(path, fsverity.SHA256)
				if err != nil || c.Discarded != "" {
					b.Fatal(err, c.Discarded)
				}
				for i := range sts[:n] {
					if _, _, ok := c.lookup(&sts[i]); !ok {
						b.Fatalf("entry %d not found", i)
					}
				}
			}
		})
	}
}
