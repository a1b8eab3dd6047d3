#!/usr/bin/env bash
# Pull benchmarks, each printing its ratio from one run (as root: the page
# cache is dropped, skopeo and docker-registry are installed if missing):
#
#  - `gocfs oci pull` of a generated 2-layer gzip image (1000 MB
#    uncompressed) from a loopback docker-registry, against
#    `crane export IMAGE - | tar -x` into an empty directory, both from a
#    cold page cache (echo 3 > /proc/sys/vm/drop_caches), alternately;
#    prints the medians and pull/crane (goal: at most 0.67). crane is built
#    from the go-containerregistry version go.mod names.
#  - zstd:chunked partial pulls: image A, then image B whose files differ
#    from A's in 1%, both made zstd:chunked by skopeo; prints the bytes
#    pulling B transferred (counted by a loopback proxy) against B's
#    compressed size (goal: at most 5%).
#
# Usage: bash bench/pull.sh
# Environment:
#   GOCFS_BENCH_PULL_MB     size of the crane comparison's image (default 1000)
#   GOCFS_BENCH_RUNS        runs of each side (default 3; the medians count)
#   GOCFS_BENCH_CHUNKED_MB  size of the zstd:chunked images (default 100)
#   PORT                    the registry's port (default 5099)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/pull.sh: run as root (it drops the page cache)" >&2
	exit 1
fi
bash scripts/install-deps.sh
port=${PORT:-5099}
test/registry/run.sh "$port" 2>/dev/null &
reg=$!
trap 'kill $reg 2>/dev/null; wait $reg 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done
GOCFS_BENCH_REGISTRY=127.0.0.1:$port go test -run '^$' -bench 'PullVsCrane' -benchtime 1x -timeout 1h ./oci/
go test -run '^$' -bench 'ChunkedPullAfter' -benchtime 1x -timeout 1h ./oci/
