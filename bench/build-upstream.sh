#!/bin/bash
# Builds upstream's mkcomposefs (C, composefs 1.0.x) for the benchmarks'
# GOCFS_UPSTREAM_BIN, without meson: SRC is a composefs source tree (its
# libcomposefs/ and tools/), OUT the directory to put mkcomposefs in.
# Needs gcc and OpenSSL's headers (libssl-dev).
#
#   bash bench/build-upstream.sh SRC OUT
#   GOCFS_UPSTREAM_BIN=OUT bash bench/mkcomposefs.sh
set -euo pipefail
src=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
cfg=$(mktemp -d)
trap 'rm -rf "$cfg"' EXIT
cat >"$cfg/config.h" <<'H'
#define HAVE_OPENSSL 1
#define HAVE_ENDIAN_H 1
#define HAVE_REALLOCARRAY 1
#define HAVE_MOUNT_ATTR_IDMAP 1
#define HAVE_FSCONFIG_CMD_CREATE_SYS_MOUNT_H 1
#define LCFS_EXTERN extern
H
# As upstream's meson.build: hash.c's flags, C11 with GNU extensions.
gcc -O2 -std=gnu11 -w -I"$cfg" -I"$src" -I"$src/libcomposefs" \
	-DUSE_OBSTACK=0 -DTESTING=0 -DUSE_DIFF_HASH=0 \
	-o "$out/mkcomposefs" "$src/tools/mkcomposefs.c" \
	"$src"/libcomposefs/{hash,lcfs-fsverity,lcfs-utils,lcfs-writer-erofs,lcfs-writer,lcfs-mount}.c \
	-lcrypto -lpthread
echo "built $out/mkcomposefs"
