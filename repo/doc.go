// Package repo is a composefs repository: a content-addressed object store
// shared by any number of composefs images, with named references to the
// images, garbage collection and a consistency check. Its layout is the one
// of composefs-rs (the cfsctl tool), so that both can work on the same
// repository where their algorithms agree:
//
//	REPO/
//	├── meta.json                  format version, digest algorithm, feature flags
//	├── objects/XX/REST            file content (and images), named by fs-verity digest
//	├── images/DIGEST              -> ../objects/XX/REST: the images known to the repository
//	├── images/refs/NAME           -> ../DIGEST (../../DIGEST for a/NAME …): named images
//	├── streams/NAME               -> ../objects/XX/REST: split streams (Tx.PutStream)
//	├── streams/refs/REF           -> ../NAME (../../NAME for a/REF …): named streams
//	└── tmp/                       gocfs's staging area (not in composefs-rs)
//
// An image is itself an object: an EROFS composefs image whose regular
// files point at objects by their path ("XX/REST") and, in SHA-256
// repositories, carry the objects' fs-verity digests for overlayfs to
// check. Only images linked under images/ are ever mounted.
//
// # Crash safety
//
// Objects are written by package store, the one object store of gocfs,
// which the repository opens on objects/ with its tmp/, progress and
// notice functions as options. An object only ever appears complete under
// its final name. New content is written to an unnamed temporary file
// (O_TMPFILE) in the objects directory, its digest computed over the very
// bytes written and checked against the name it is to get (a source file
// that changed meanwhile is an error naming it, never a misnamed object);
// the content of a batch of objects is made durable (syncfs) before any
// of them gets its name (linkat), and those names are made durable before
// an image that refers to them is linked under images/.
// A killed import leaves at most objects that nothing refers to yet, which
// [Repo.GC] removes. Image and reference names are symlinks, created in one
// step (symlinkat) or replaced atomically (a symlink made under tmp/, then
// renamed over the old one).
//
// # Nothing outside the repository
//
// Everything the repository writes or removes is reached from its own
// directory descriptors through no symbolic link: a symlink put where
// tmp/, objects/XX, images/ or streams/ should be is reported by [Repo.GC]
// and [Repo.Fsck], never followed, and an import through one fails.
//
// # Concurrency
//
// Any number of processes may import into a repository at once: objects are
// deduplicated by name, and whoever links a name first wins (the content is
// the same by construction). Operations that add to the repository hold a
// shared flock(2) on the repository directory for their whole duration;
// [Repo.GC] holds an exclusive one, so it never runs while an import is
// under way and can't delete an object that an import found already present
// and is about to refer to. composefs-rs takes the same locks on the same
// directory, so gocfs and cfsctl exclude each other too. Waiting for the
// lock ends when the operation's context is done ([Repo.Lock]).
//
// # Digest algorithms
//
// A repository uses one fs-verity digest algorithm, recorded in meta.json:
// SHA-256 (the default, the one upstream composefs images carry and
// mount.composefs checks) or SHA-512. In a SHA-512 repository, objects and
// images are named by their SHA-512 fs-verity digests and the images carry
// SHA-512 per-file digests (the 68-byte overlayfs metacopy form, which
// upstream's tools don't write but overlayfs checks); the image's own digest
// is always checked, and [Repo.Fsck] checks every object. See docs/repository.md for all the differences from
// composefs-rs.
package repo
