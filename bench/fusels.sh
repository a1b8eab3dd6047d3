#!/bin/bash
# Times `ls -lR` over a FUSE mount of a composefs image of a directory
# (default /usr/share) against the kernel mount (EROFS + overlayfs) of the
# same image, cold (the first walk of a fresh mount; the image file itself
# is in the page cache) and warm (the same mount again), and prints FUSE
# time / kernel time. Needs root. The object store is left empty: `ls -lR`
# reads metadata only.
#
#   bash bench/fusels.sh [DIR]        RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-/usr/share}
runs=${RUNS:-3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gocfs-fusels.XXXXXX")
mnt=$tmp/mnt
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$mnt" "$tmp/objects"
CGO_ENABLED=0 go build -o "$tmp/gocfs" ./cmd/gocfs
"$tmp/gocfs" mkcomposefs "$src" "$tmp/image.cfs"
cat "$tmp/image.cfs" >/dev/null
echo "image of $src: $(find "$src" -xdev | wc -l) entries, $(($(stat -c %s "$tmp/image.cfs") / 1000000)) MB"

now_us() { echo $(($(date +%s%N) / 1000)); }
min() { if [[ -z $1 || $2 -lt $1 ]]; then echo "$2"; else echo "$1"; fi; }
# walk KIND: mount with KIND (kernel or fuse), time ls -lR cold then warm,
# unmount; prints "COLD_US WARM_US"
walk() {
	local fuse=no
	[ "$1" = fuse ] && fuse=yes
	"$tmp/gocfs" mount --fuse=$fuse --background --basedir "$tmp/objects" "$tmp/image.cfs" "$mnt"
	local t0 cold warm
	t0=$(now_us)
	ls -lR "$mnt" >/dev/null
	cold=$(($(now_us) - t0))
	t0=$(now_us)
	ls -lR "$mnt" >/dev/null
	warm=$(($(now_us) - t0))
	umount "$mnt"
	echo "$cold $warm"
}
kc="" kw="" fc="" fw=""
for _ in $(seq "$runs"); do
	read -r c w < <(walk kernel)
	kc=$(min "$kc" "$c") kw=$(min "$kw" "$w")
	read -r c w < <(walk fuse)
	fc=$(min "$fc" "$c") fw=$(min "$fw" "$w")
done
t0=$(now_us)
ls -lR "$src" >/dev/null
sw=$(($(now_us) - t0))
ms() { awk -v t="$1" 'BEGIN { printf "%.2f s", t / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-8s %12s %12s\n' "" cold warm
printf '%-8s %12s %12s\n' kernel "$(ms "$kc")" "$(ms "$kw")"
printf '%-8s %12s %12s\n' FUSE "$(ms "$fc")" "$(ms "$fw")"
printf '%-8s %12s %12s\n' source "" "$(ms "$sw")"
echo "FUSE time / kernel time: cold $(ratio "$fc" "$kc")x, warm $(ratio "$fw" "$kw")x (goal <= 1.5 warm)"
