#!/bin/bash
# Runs every benchmark script; each prints ratios measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/fsverity.sh
bash bench/mkcomposefs.sh "${1:-/usr}"
if [ "$(id -u)" = 0 ]; then
	bash bench/fusels.sh /usr/share
fi
go test -run '^$' -bench . -benchtime 2x ./image/ ./fsverity/ ./dump/
bash bench/containerd.sh
bash bench/pull.sh
