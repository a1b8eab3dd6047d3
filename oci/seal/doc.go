// Package seal implements composefs's OCI sealing specification
// (composefs-rs, crates/composefs-oci/src/sealing_spec.rs): the fs-verity
// digests of an image's composefs EROFS (merged, and per layer), of its
// configuration and of its manifest, carried in OCI metadata so that one
// signature covers a tree the kernel checks on every read.
//
// Two modes carry them. Inline ([Inline], [Seal]): annotations in the
// image's own manifest, "composefs.merged.erofs.v1.fsverity-sha512-12" and
// the like ([Key]), with optional base64 signatures under the same key
// plus ".sig". Artifact ([BuildArtifact], [Sign]): an OCI artifact of type
// [ArtifactType] whose layers are PKCS#7 signatures, pushed as a referrer
// of the image (the OCI referrers API, or the "sha256-HEX" tag of the
// referrers tag schema).
//
// Signatures are fs-verity builtin signatures: detached PKCS#7 (DER) over
// the kernel's fsverity_formatted_digest ([FormattedDigest]), made by a
// [Signer] ([KeySigner]: a PEM key and its X.509 certificate), checked by
// [VerifySignature] against a certificate as the kernel checks them
// against its .fs-verity keyring.
//
// [Pull] verifies an image as it is pulled, before anything is named: the
// EROFS the repository generates must have exactly the sealed digest, and
// in [VerifySigned] the signatures must be the certificate's; the verified
// signatures go to FS_IOC_ENABLE_VERITY when the image is stored, and the
// artifact is kept beside it. [Mount] verifies a stored image again
// before mounting it. Errors wrap [ErrNotSealed], [ErrMismatch],
// [ErrSignature], [ErrMalformed] or [ErrUnsupported].
//
//	signer, _ := seal.LoadKeySigner(keyPEM, certPEM)
//	seal.Sign(ctx, r, "registry.example/app:1.0", oci.PullOptions{}, signer)
//	seal.Pull(ctx, r, "registry.example/app:1.0", seal.PullOptions{Mode: seal.VerifySigned, Cert: signer.Cert})
//
// docs/sealing.md has the threat model and a walk-through.
package seal
