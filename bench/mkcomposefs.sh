#!/bin/bash
# Times gocfs mkcomposefs on a directory (default /usr), warm cache:
#   --print-digest-only, a second --print-digest-only with --digest-cache
#   (the cache made by a first run), and --digest-store into an empty store,
# reporting files/s, MB/s and peak RSS, and each gocfs time as a fraction
# of upstream's C mkcomposefs's for the same command (measured in the same
# run) when GOCFS_UPSTREAM_BIN names a directory holding it.
#
# CPU time (user + system) is reported too: on a shared machine it is the
# steadier measure. bench/build-upstream.sh builds upstream's mkcomposefs.
#
#   bash bench/mkcomposefs.sh [DIR]        RUNS=3 STORE_RUNS=RUNS STORE_TMP=/var/tmp
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-/usr}
runs=${RUNS:-3}
store_runs=${STORE_RUNS:-$runs}
tmp=$(mktemp -d "${STORE_TMP:-/var/tmp}/gocfs-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

CGO_ENABLED=0 go build -o "$tmp/gocfs" ./cmd/gocfs
gocfs=("$tmp/gocfs" mkcomposefs)
upstream=()
if [ -n "${GOCFS_UPSTREAM_BIN:-}" ] && [ -x "$GOCFS_UPSTREAM_BIN/mkcomposefs" ]; then
	upstream=("$GOCFS_UPSTREAM_BIN/mkcomposefs")
fi

read -r nfiles bytes < <(find "$src" -xdev -printf '%s\n' 2>/dev/null | awk '{n++; s+=$1} END {printf "%d %d\n", n, s}')
echo "source: $src, $nfiles entries, $((bytes / 1000000)) MB"
"${gocfs[@]}" --print-digest-only "$src" >/dev/null # warm the page cache

# run NAME CMD... : best wall time of $n runs (default $runs), its CPU
# time and peak RSS
best_t=0 best_rss=0 best_cpu=0 n=
run() {
	local name=$1
	shift
	best_t=999999 best_rss=0 best_cpu=0
	for _ in $(seq "${n:-$runs}"); do
		rm -rf "$tmp/store" "$tmp/img"
		local out t rss cpu u s
		out=$( { /usr/bin/time -f '%e %M %U %S' "$@" >/dev/null; } 2>&1 | tail -1)
		read -r t rss u s <<<"$out"
		cpu=$(awk "BEGIN {print $u + $s}")
		if awk "BEGIN {exit !($t < $best_t)}"; then best_t=$t best_rss=$rss best_cpu=$cpu; fi
	done
	printf '%-36s %7.2f s (CPU %6.2f s)  %8.0f files/s  peak RSS %4d MB\n' "$name" "$best_t" "$best_cpu" \
		"$(awk "BEGIN {print $nfiles / $best_t}")" "$((best_rss / 1024))"
}

run "gocfs --print-digest-only" "${gocfs[@]}" --print-digest-only "$src"
g1=$best_t c1=$best_cpu
rm -f "$tmp/cache"
"${gocfs[@]}" --digest-cache="$tmp/cache" --print-digest-only "$src" >/dev/null
sleep 2 # files changed in the second before a scan are not cached
"${gocfs[@]}" --digest-cache="$tmp/cache" --print-digest-only "$src" >/dev/null
run "gocfs --digest-cache, second run" "${gocfs[@]}" --digest-cache="$tmp/cache" --print-digest-only "$src"
g3=$best_t c3=$best_cpu
run "find (stat every entry)" find "$src" -xdev -printf '%s\n'

n=$store_runs run "gocfs --digest-store (empty store)" "${gocfs[@]}" --digest-store="$tmp/store" "$src" "$tmp/img"
g2=$best_t c2=$best_cpu
if [ ${#upstream[@]} -gt 0 ]; then
	run "upstream --print-digest-only" "${upstream[@]}" --print-digest-only "$src"
	u1=$best_t v1=$best_cpu
	n=$store_runs run "upstream --digest-store (empty store)" "${upstream[@]}" --digest-store="$tmp/store" "$src" "$tmp/img"
	u2=$best_t v2=$best_cpu
	ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
	echo "gocfs time / upstream time (lower is better):        wall   CPU"
	echo "  --print-digest-only                      $(ratio "$g1" "$u1")x  $(ratio "$c1" "$v1")x  (goal <= 0.45)"
	echo "  --print-digest-only, --digest-cache warm $(ratio "$g3" "$u1")x  $(ratio "$c3" "$v1")x  (goal <= 0.15)"
	echo "  --digest-store into an empty store       $(ratio "$g2" "$u2")x  $(ratio "$c2" "$v2")x  (goal <= 0.30)"
	a=$("${gocfs[@]}" --print-digest-only "$src")
	c=$("${gocfs[@]}" --digest-cache="$tmp/cache" --print-digest-only "$src")
	b=$("${upstream[@]}" --print-digest-only "$src")
	[ "$a" = "$b" ] && [ "$c" = "$b" ] && echo "digests agree: $a" || echo "DIGESTS DIFFER: gocfs $a, with cache $c, upstream $b"
else
	echo "(set GOCFS_UPSTREAM_BIN to a directory with upstream's mkcomposefs for ratios)"
fi
