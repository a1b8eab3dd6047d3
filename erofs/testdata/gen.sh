#!/bin/sh
# Regenerates the plain EROFS test images with erofs-utils' mkfs.erofs
# (Debian package erofs-utils; these were made with version 1.5), run as
# root (for the device nodes):  sh gen.sh
# The .manifest files list what fsck.erofs --extract (an independent EROFS
# reader) extracts from each image; see manifest() in erofs_test.go.
set -eu
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/dir/sub" "$src/many"
printf 'hello\n' > "$src/small"
head -c 4096 /dev/zero | tr '\0' 'a' > "$src/block"
head -c 10000 /dev/zero | tr '\0' 'b' > "$src/big"
head -c 5000 /dev/zero | tr '\0' 'c' > "$src/mid"
head -c 9000 /dev/zero | tr '\0' 'd' > "$src/dir/sub/deep"
: > "$src/empty"
ln -s small "$src/link"
ln -s "$(printf 'x%.0s' $(seq 1 3000))" "$src/longlink"
ln "$src/small" "$src/hardlink"
mkfifo "$src/fifo"
mknod "$src/chr" c 1 3
mknod "$src/blk" b 7 0
setfattr -n user.foo -v bar "$src/small"
setfattr -n trusted.x -v yyy "$src/dir"
setfattr -n security.selinux -v 'system_u:object_r:etc_t:s0' "$src/mid"
chmod 4755 "$src/big"
i=0
while [ $i -lt 300 ]; do
	: > "$src/many/file_with_a_rather_long_name_$i"
	i=$((i + 1))
done
u=-U01234567-89ab-cdef-0123-456789abcdef
mkfs.erofs -T0 --all-root $u mkfs-default.img "$src" >/dev/null
mkfs.erofs -T0 --all-root $u -Enoinline_data mkfs-noinline.img "$src" >/dev/null
mkfs.erofs -T0 --all-root $u --chunksize=4096 mkfs-chunked.img "$src" >/dev/null 2>&1
EROFS_GEN_MANIFEST=1 go test -run TestMkfsImages ./erofs   # then: the manifests
