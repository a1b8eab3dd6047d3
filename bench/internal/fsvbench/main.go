// Command fsvbench times fs-verity digests of one file, for
// bench/fsverity.sh. It is a benchmark helper, not part of gocfs.
//
// Usage:
//
//	fsvbench -gen SIZE_MB FILE          write SIZE_MB MiB of pseudo-random data
//	fsvbench [-alg sha256] [-workers N] [-runs R] [-plain] FILE
//
// The second form digests FILE R times and prints the best wall-clock time
// in seconds and the digest, as "SECONDS ALG:HEX". With -workers 1 it uses
// fsverity.DigestFile (sequential reads); otherwise
// fsverity.DigestFileParallel with N workers (0: one per CPU). With -plain it
// hashes the file with plain crypto/sha256 instead, as a reference.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gocfs/gocfs/fsverity"
)

func main() {
	gen := flag.Int("gen", 0, "write this many MiB of pseudo-random data to FILE and exit")
	algName := flag.String("alg", "sha256", "hash algorithm: sha256 or sha512")
	workers := flag.Int("workers", 1, "goroutines hashing the file; 1: sequential DigestFile, 0: one per CPU")
	runs := flag.Int("runs", 3, "number of timed runs; the best is printed")
	plain := flag.Bool("plain", false, "hash with plain crypto/sha256 instead (reference)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: fsvbench [-gen MiB | -alg A -workers N -runs R -plain] FILE")
		os.Exit(2)
	}
	path := flag.Arg(0)
	if *gen > 0 {
		if err := generate(path, int64(*gen)<<20); err != nil {
			fatal(err)
		}
		return
	}
	alg, err := fsverity.ParseAlgorithm(*algName)
	if err != nil {
		fatal(err)
	}
	best := time.Duration(1<<63 - 1)
	var out string
	for range max(*runs, 1) {
		start := time.Now()
		if *plain {
			out, err = plainSHA256(path)
		} else {
			var d []byte
			if *workers == 1 {
				d, err = fsverity.DigestFile(path, alg)
			} else {
				d, err = fsverity.DigestFileParallel(context.Background(), path, alg, *workers)
			}
			out = alg.String() + ":" + fsverity.Hex(d)
		}
		if err != nil {
			fatal(err)
		}
		best = min(best, time.Since(start))
	}
	fmt.Printf("%.6f %s\n", best.Seconds(), out)
}

func plainSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// generate writes size bytes of xorshift64 output to path.
func generate(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	x := uint64(0x9e3779b97f4a7c15)
	var b [8]byte
	for n := int64(0); n < size; n += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[:], x)
		if _, err := w.Write(b[:min(8, size-n)]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fsvbench:", err)
	os.Exit(1)
}
