#!/bin/bash
# Runs every fuzz target of the module for a while each: scripts/fuzz.sh [DURATION]
# New interesting inputs land in Go's fuzz cache; copy crashers into the
# package's testdata/fuzz/<Target>/ so they stay regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
	pkg=./$(dirname "${f#./}")
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		echo "== $pkg $fn ($t)"
		go test "$pkg" -run "^$" -fuzz "^$fn\$" -fuzztime "$t" -fuzzminimizetime 2s
	done
done
