#!/bin/bash
# Disk used by three images that share a large base, pulled by one
# containerd through its overlayfs snapshotter and through gocfs's
# (docs/containerd.md). Needs root; installs containerd, runc and
# docker-registry from Debian if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
GOCFS_BENCH_CONTAINERD=1 go test -count=1 -run '^TestBenchDiskUsage$' -v ./snapshotter/ | grep -v '^=== RUN'
