// Package splitstream reads and writes split streams in the format of
// composefs-rs 0.9 (its SplitStream; composefs-rs's
// crates/composefs/src/splitstream.rs and splitstream_format.rs): a byte
// stream, such as an OCI layer's tarball, stored so that it can be rebuilt
// byte for byte while its large pieces live elsewhere, as objects of a
// composefs object store named by their fs-verity digests. The package does
// no I/O of its own: the Writer writes to an io.Writer, the Reader reads an
// io.ReaderAt, and objects come from a function the caller gives.
//
// # Format
//
// All integers are little-endian. A FileRange is two uint64s, [start, end)
// in bytes from the start of the file.
//
//	offset  size  section
//	0       32    header: "SplitStream", version 0, flags (uint16, 0),
//	              fs-verity algorithm (1 sha256, 2 sha512), lg_blocksize 12,
//	              info FileRange
//	32      80    info: stream_refs, object_refs, stream, named_refs
//	              (FileRanges), content_type, stream_size (uint64s)
//	112     32n   stream refs: digests of other split streams
//	        32m   object refs: digests of objects, in order of first use
//	        ...   named refs: zstd of "index:name\0" records, sorted by name
//	        ...   stream: zstd of chunks, to the end of the file
//
// (64-byte digests for sha512.) A chunk is an int64: a negative value -n
// is followed by n bytes of inline data; a non-negative value is an index
// into the object refs, whose object's whole content is the chunk. Files
// written by composefs-rs before it declared its header #[repr(C)] (bootc
// 1.15 and older) have the same bytes but the header laid out as info
// range (0), flags (16), magic (18), version (29), algorithm (30),
// lg_blocksize (31); the Reader reads both, the Writer writes the current
// one. content_type tags what the stream is ([ContentTypeOCILayer] and the
// other OCI constants are composefs-oci's); stream_size is the rebuilt
// stream's length.
//
// # Writing as composefs-rs writes
//
// The Writer makes the decisions composefs-rs's SplitStreamWriter makes:
// inline data is gathered until the next external chunk or the end and
// written as one chunk however long (there is no maximum inline chunk
// size); objects are numbered in order of first use; stream references in
// order of first naming, and a stream that loses its name stays listed;
// named references sorted by name, bytewise; the sections in the order
// above, with no padding. Given the same calls, a Writer's file and
// composefs-rs's have the same bytes except inside the compressed blocks of
// the two zstd sections, and so in the named_refs and stream ranges that
// follow from the compressed sizes.
//
// composefs-rs compresses with libzstd through the zstd crate at level 0,
// libzstd's default, 3, feeding data as a stream, so its frames have no
// checksum, no content size and a 2 MiB window (header 28 b5 2f fd 00 58),
// and a section with no data is the frame 28 b5 2f fd 20 00 01 00 00. The
// Writer uses klauspost/compress at its default level (its counterpart of
// level 3), without checksum, with a 2 MiB window, and writes exactly those
// frame headers and that empty frame. The blocks themselves come from a
// different compressor and differ whenever the data compresses (for one,
// klauspost may start with an RLE block, libzstd never does); when a
// section is empty or both store it raw (small or incompressible data),
// the whole file is identical, as the golden files in testdata/golden,
// made with libzstd, show. A stream's fs-verity digest, its object name, so
// generally differs between gocfs and composefs-rs; each reads the other's.
//
// # Reading
//
// [NewReader] reads the header, the info section, the reference arrays and
// the named references, which is all a garbage collector needs; the chunks
// are decompressed as [Reader.Next], [Reader.Read] or [Reader.Reassemble]
// ask for them, in a stream, never whole. It refuses what composefs-rs
// refuses (bad magic, version, algorithm, block size, reference arrays not
// a whole number of digests, malformed named references, chunk indexes out
// of range, undecodable zstd) and more: ranges outside the file or
// overlapping each other or the header, inline chunks adding up to more
// than stream_size, a rebuilt stream of another size than stream_size.
// Memory is bounded by the file's size plus [MaxWindowSize] for a zstd
// window and [MaxNamedRefsSize] for the named references. Errors wrap the
// sentinels ([ErrCorrupt], [ErrVersion], ...) and through them
// fs.ErrInvalid, in an [*Error] naming the field and offset.
//
//	r, err := splitstream.NewReader(f, size,
//		splitstream.WithAlgorithm(fsverity.SHA256),
//		splitstream.WithContentType(splitstream.ContentTypeOCILayer))
//	if err != nil {
//		return err
//	}
//	defer r.Close()
//	live := r.ObjectRefs()              // what the stream keeps alive
//	for _, nr := range r.NamedRefs() { // and the streams it names
//		live = append(live, nr.Digest)
//	}
//	_, err = r.Reassemble(w, openObject) // the original bytes
package splitstream
