#!/usr/bin/env bash
# Compares reads and "ls -lR" through a mount made by gocfs mountd with the
# root kernel mount of the same image and with the FUSE server, and prints
# the ratios (time ÷ the root kernel mount's; 1.00 is as fast). Run as root.
#
# Usage: bash bench/mountd.sh
# Environment: TMPDIR (where the tree, store and image go), RUNS (timed
# rounds, the best of each kept; default 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/mountdbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/mountdbench" ./bench/internal/mountdbench
go build -o "$dir/gocfs" ./cmd/gocfs
"$dir/mountdbench" -gen "$dir/src"
mkdir "$dir/objects"
"$dir/gocfs" mkcomposefs --digest-store="$dir/objects" "$dir/src" "$dir/image.cfs"
"$dir/mountdbench" -runs "${RUNS:-5}" "$dir/image.cfs" "$dir/objects" "$dir/src"
