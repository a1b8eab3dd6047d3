// Package fsverity computes Linux fs-verity file digests in pure Go and wraps
// the kernel's fs-verity ioctls.
//
// A composefs image names every regular file's content by its fs-verity
// digest, so the digests computed here must be bit-for-bit identical to the
// ones the kernel reports for the same content. They are: the algorithm is
// the one specified in the kernel's Documentation/filesystems/fsverity.rst
// and implemented by libfsverity, restricted to what composefs uses.
//
// # Digest format
//
// The file's data is split into [BlockSize] (4096-byte) blocks, the last one
// zero-padded. Each data block is hashed, and the hashes are packed into
// 4096-byte hash blocks (zero-padded at the end of each level), which are
// hashed in turn, level by level, until a single block remains: the hash of
// that block is the root hash. A file of exactly one block has the hash of
// its data block as root hash, and an empty file has an all-zero root hash.
// No salt is used.
//
// The root hash goes into the kernel's 256-byte struct fsverity_descriptor
// (version 1, the hash algorithm number, log2 of the block size, salt size
// 0, the data size as a little-endian 64-bit integer, the root hash
// zero-padded to 64 bytes, and zero for the salt and reserved fields). The
// file digest ("fs-verity digest", what FS_IOC_MEASURE_VERITY returns and
// what `fsverity digest` prints) is the hash of that descriptor, with the
// same algorithm as the tree.
//
// # Algorithms
//
// [SHA256] and [SHA512] are supported, numbered as in the kernel's UAPI
// (FS_VERITY_HASH_ALG_SHA256 = 1, FS_VERITY_HASH_ALG_SHA512 = 2). Functions
// that take an [Algorithm] and return an error reject any other value with
// [ErrUnknownAlgorithm]; [New] and [Sum] panic on it, like [crypto.Hash.New].
//
// # Computing digests
//
// [New] returns a streaming [Hasher] that implements [hash.Hash]: write the
// file's content in pieces of any size and call Sum. It keeps one pending
// block per tree level, so its memory use grows with the logarithm of the
// data size, not with the data size. [Sum] digests a byte slice, [Digest] an
// [io.Reader] and [DigestFile] a named regular file.
//
// # Parallelism
//
// [DigestFiles] digests many files with a pool of worker goroutines, one file
// per worker at a time. [DigestReaderAt] and [DigestFileParallel] split one
// large file into chunks of whole hash blocks and hash the chunks on several
// goroutines; the result is the same digest as the sequential functions
// give.
//
// # Kernel interface
//
// On Linux, [Enable] turns fs-verity on for an open file
// (FS_IOC_ENABLE_VERITY, 4096-byte blocks, no salt) and [Measure] reads the
// digest the kernel computed (FS_IOC_MEASURE_VERITY). Their errors name the
// file and wrap both the errno and one of the sentinel errors
// [ErrNotSupported] (kernel or file system without fs-verity) and
// [ErrNotEnabled] (the file has no fs-verity), so callers can test with
// [errors.Is] against either. On other systems both functions fail with
// [ErrNotSupported].
//
// # Hexadecimal
//
// [Hex] formats a digest as lowercase hexadecimal, the form composefs uses
// in object paths, and [ParseHex] parses one back, checking its length
// against the algorithm.
package fsverity
