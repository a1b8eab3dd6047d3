// Package oci pulls OCI container images into a composefs repository (see
// package repo) and mounts them.
//
// [Pull] reads an image from a registry (credentials from the docker
// configuration, through authn.DefaultKeychain), an OCI image layout
// directory ("oci:DIR[:TAG]") or a docker save archive
// ("docker-archive:FILE[:REF]"). Every manifest, index, configuration and
// layer blob is checked against the digest and size of the descriptor that
// names it ([ErrDigestMismatch]). A registry's layer is downloaded into an
// unnamed file of the repository (with an idle timeout and retries:
// [PullOptions]) and imported from it as it comes, under the lock shared,
// several layers at once (an import that waits on the network more than a
// second gives the lock up and starts again when the download is
// complete); each layer (gzip, zstd or uncompressed) is imported so: every
// regular file's
// fs-verity digest is computed as the archive is read, files of more than
// 64 bytes become objects (hashed in memory, or while being written to an
// unnamed file for those over 1 MiB, then linked under their digest),
// smaller ones stay inline; nothing is unpacked to disk, and a pull writes
// at most [PullOptions].MaxBytes ([ErrTooLarge]). The layer itself is kept
// as a split stream (package splitstream): the tar headers and padding
// inline, file contents as references to objects, so that [WriteLayer]
// gives back the layer's archive byte for byte.
//
// A registry's zstd:chunked layer (containers/storage: a table of contents
// named by the layer descriptor's annotations, each file's content in zstd
// frames of its own) is fetched in part, by HTTP range requests: the TOC,
// checked against its annotation, the frames between files' contents (tar
// headers), and only the contents of the files the stored layers lack
// (found by path and size, checked by SHA-256 against the TOC). The
// archive is rebuilt byte for byte, each file fetched checked against the
// TOC, and imported as any other; its diff ID is checked before anything
// is named.
//
// The layers are merged in order into one rootfs, as a container runtime
// applies them (whiteouts, opaque directories, hard links kept as hard
// links), and the rootfs becomes a composefs image in the repository,
// tagged with the image's name. The image is canonical: the same rootfs
// extracted to a directory and scanned with hard links preserved gives the
// same image, digest for digest. docs/oci.md states the rules (implicit
// parent directories, directory times, xattrs, hard links, inline files)
// and the split stream format.
//
// What the repository keeps of an OCI image is what composefs-rs keeps:
// under streams/, oci-layer-sha256:DIFFID for each layer's split stream,
// oci-config-sha256:DIGEST and oci-manifest-sha256:DIGEST for the
// configuration and the manifest (naming the layers' streams and, for the
// configuration, the composefs image), the tag streams/refs/oci/ENCODED
// pointing at the manifest's stream; the composefs image under images/,
// named images/refs/NAME too. Images earlier gocfs pulled (gocfs-ss
// records, gocfs-oci-layer-… streams, nested tags) are still read.
// Everything is written through the repository's transactions
// (repo.Repo.Update), and the repository's garbage collection follows the
// streams' references by itself, keeping what named OCI images need
// ([Remove] drops the names).
package oci
