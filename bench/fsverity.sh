#!/usr/bin/env bash
# Compares the throughput of gocfs's fs-verity digests with sha256sum on one
# large file, and prints ratios (fs-verity throughput / sha256sum
# throughput; above 1 means faster than sha256sum). Absolute speeds depend
# on the machine and its load, so only the ratios are reported.
#
# Usage: bash bench/fsverity.sh
# Environment:
#   TMPDIR            where the test file goes (default /tmp)
#   FSVBENCH_SIZE_MB  file size in MiB (default 1024)
#   FSVBENCH_RUNS     timed runs per tool; the best is kept (default 3)
#   FSVBENCH_ALG      sha256 (default) or sha512
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mb=${FSVBENCH_SIZE_MB:-1024}
runs=${FSVBENCH_RUNS:-3}
alg=${FSVBENCH_ALG:-sha256}
sumtool=${alg}sum

dir=$(mktemp -d "${TMPDIR:-/tmp}/fsvbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
file=$dir/data

go build -o "$dir/fsvbench" ./bench/internal/fsvbench
echo "writing ${size_mb} MiB test file in $dir ..."
"$dir/fsvbench" -gen "$size_mb" "$file"
cat "$file" >/dev/null # into the page cache, so that every tool reads from memory

# Each round times every contender once, so that a burst of load from
# elsewhere on the machine hurts them alike; the best time of each is kept.
now_us() { echo $(($(date +%s%N) / 1000)); }
min() { if [[ -z $1 || $2 -lt $1 ]]; then echo "$2"; else echo "$1"; fi; }
fsv() { # fsv ARGS...: run fsvbench once, print "MICROSECONDS DIGEST"
	local t d
	read -r t d < <("$dir/fsvbench" -runs 1 "$@" "$file")
	awk -v t="$t" -v d="$d" 'BEGIN { printf "%d %s\n", t * 1e6, d }'
}
ncpu=$(nproc)
b_sum="" b_single="" b_par="" b_plain="" b_ossl=""
echo "timing $runs rounds of: $sumtool, openssl dgst, DigestFile, DigestFileParallel ..."
for _ in $(seq "$runs"); do
	t0=$(now_us)
	"$sumtool" "$file" >/dev/null
	b_sum=$(min "$b_sum" $(($(now_us) - t0)))
	if command -v openssl >/dev/null; then
		t0=$(now_us)
		openssl dgst -"$alg" "$file" >/dev/null
		b_ossl=$(min "$b_ossl" $(($(now_us) - t0)))
	fi
	read -r t d_single < <(fsv -alg "$alg" -workers 1)
	b_single=$(min "$b_single" "$t")
	read -r t d_par < <(fsv -alg "$alg" -workers 0)
	b_par=$(min "$b_par" "$t")
	if [[ $alg == sha256 ]]; then
		read -r t _ < <(fsv -plain)
		b_plain=$(min "$b_plain" "$t")
	fi
done
t_sum=$b_sum t_single=$b_single t_par=$b_par t_plain=$b_plain

if [[ $d_single != "$d_par" ]]; then
	echo "MISMATCH: sequential $d_single, parallel $d_par" >&2
	exit 1
fi
if command -v fsverity >/dev/null; then
	d_tool=$(fsverity digest --hash-alg="$alg" --block-size=4096 "$file" | cut -d' ' -f1)
	if [[ $d_tool != "$d_single" ]]; then
		echo "MISMATCH: fsverity digest says $d_tool, gocfs $d_single" >&2
		exit 1
	fi
	echo "digest matches \`fsverity digest\`: $d_single"
fi

echo
echo "throughput relative to $sumtool on the same ${size_mb} MiB file (higher is better):"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [[ $alg == sha256 ]]; then
	printf '  %-44s %sx\n' "plain Go crypto/sha256, 1 thread" "$(ratio "$t_sum" "$t_plain")"
fi
printf '  %-44s %sx\n' "fs-verity DigestFile, 1 thread" "$(ratio "$t_sum" "$t_single")"
printf '  %-44s %sx\n' "fs-verity DigestFileParallel, $ncpu workers" "$(ratio "$t_sum" "$t_par")"
if [[ $alg == sha256 ]]; then
	printf '  %-44s %sx\n' "fs-verity 1 thread vs plain Go sha256" "$(ratio "$t_plain" "$t_single")"
fi
if [[ -n $b_ossl ]]; then
	echo
	echo "time relative to \`openssl dgst -$alg\` on the same file (lower is better):"
	printf '  %-44s %sx\n' "fs-verity DigestFile, 1 thread" "$(ratio "$t_single" "$b_ossl")"
	printf '  %-44s %sx  (goal <= 0.6)\n' "fs-verity DigestFileParallel, $ncpu workers" "$(ratio "$t_par" "$b_ossl")"
fi
