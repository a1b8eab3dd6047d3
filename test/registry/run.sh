#!/bin/sh
# Runs Debian's docker-registry (CNCF distribution) on 127.0.0.1 only, with
# its storage in a temporary directory removed on exit: a registry to try
# "gocfs oci pull" against by hand, and the one bench/pull.sh uses. The oci
# package's tests start their own the same way (oci/registry_test.go).
#
#   test/registry/run.sh [PORT]          # default 5000; Ctrl-C stops it
#   gocfs --repo /tmp/r oci pull 127.0.0.1:5000/some/image:tag
set -eu
port=${1:-5000}
if ! command -v docker-registry >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry
fi
dir=$(mktemp -d)
pid=
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	[ -z "$pid" ] || wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cat >"$dir/config.yml" <<EOC
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOC
echo "registry on 127.0.0.1:$port, storage in $dir/storage" >&2
# In the background, so that a signal to this script stops the registry
# and removes its storage at once (a shell runs its traps only after a
# command in the foreground ends).
docker-registry serve "$dir/config.yml" &
pid=$!
wait "$pid"
