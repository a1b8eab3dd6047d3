// Package store is gocfs's one object store: regular files named by the
// fs-verity digest of their content, as XX/REST (the first two hex digits,
// a slash, the rest), each stored once. mkcomposefs --digest-store, a
// repository's objects/ (package repo, and OCI imports through it) and
// the FUSE server's object lookups all go through it.
//
//	s, err := store.Open(dir, store.Options{Create: true})
//	w := s.NewWriter(nil)
//	d, err := w.Put(data)                             // from memory
//	d, _, err = w.PutFile(f, digest.Digest{}, -1)     // from an open file
//	err = w.Sync()                                    // named and durable
//	f, err := s.OpenObject(d)
//
// # Content is checked against its name
//
// No object is ever stored under a digest its content does not have. The
// digest is computed over the very bytes written (hashed as they are
// copied), or, where the kernel copied them (reflink, copy_file_range),
// measured from the stored copy. An expected digest (the one a scan
// found) that differs is an error naming the file (ErrChanged), after one
// more read of it ([Writer.ImportFile]). Objects found present are checked
// against the kernel's fs-verity measurement where they have one.
//
// # Crash safety
//
// An object only ever appears complete under its final name. Content is
// written to an unnamed file (O_TMPFILE; on file systems without it, a
// named file in the store's temporary directory), the content of a batch
// of objects is made durable (syncfs) before any of them is linked
// (linkat) under its name, and [Writer.Sync] makes the names durable.
// Several processes may write into one store at once; a name that exists
// already is kept (its content is the same by construction).
//
// # Nothing outside the store
//
// Every object is opened, linked and removed relative to the store's own
// directory descriptors, through no symbolic link and no "..": a symbolic
// link where a fan-out directory or an object should be is reported
// ([Store.Walk], ErrUnexpected), never followed.
//
// # Sparse files
//
// Holes stay holes: an object written from a stream has every whole,
// aligned 4096-byte block of zeros left as a hole, and copies from files
// go by SEEK_DATA / SEEK_HOLE.
//
// fs-verity is enabled on new objects where the file system supports it
// (unless Options.NoVerity), and the kernel's measurement is checked
// against the digest computed; Options.RequireVerity makes it mandatory.
// The store takes no lock: a repository (package repo) keeps its garbage
// collection away from writers with its own lock, and passes its
// temporary directory, progress and notice functions in as options.
package store
