#!/bin/bash
# Installs the Debian packages gocfs's tests use. Safe to run again: it only
# calls apt-get when something is missing. Needs root.
set -euo pipefail

pkgs=(
	fsverity        # reference fs-verity digests
	erofs-utils     # fsck.erofs / mkfs.erofs: an independent EROFS implementation
	attr            # getfattr/setfattr for by-hand checks
	fuse3           # fusermount3 for the FUSE mount
	e2fsprogs       # mkfs.ext4 -O verity for the VM harness
	qemu-system-x86 # the fs-verity VM
	busybox-static  # the VM's initramfs
	xz-utils        # kernel modules are .ko.xz
	cpio
	kmod
	docker-registry # a real registry on 127.0.0.1 for the OCI tests
	python3         # upstream composefs's tests/gendir and dumpdir
	libcap2-bin     # capsh, which upstream's test-lib.sh asks about FUSE
	containerd      # the snapshotter's end-to-end test (containerd 1.6, ctr)
	runc            # runs its containers
	skopeo          # zstd:chunked images for the partial pull tests
	curl            # bench/pull.sh waits for its registry
)

# Upstream composefs's own FUSE test (tests/test-random-fuse.sh and what it
# uses), of a pinned release, run against gocfs's links by
# cmd/gocfs's TestUpstreamRandomFuseScript. The release comes through the Go
# module proxy (github.com/containers/composefs is served there as a module
# zip, checked against the Go checksum database), which CI machines reach;
# GitHub itself they do not.
composefs_tests() {
	local dir=/usr/local/share/gocfs/composefs-tests mod=github.com/containers/composefs@v1.0.8
	[ -x "$dir/test-random-fuse.sh" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: upstream composefs tests missing in $dir (run as root to fetch them)" >&2
		return 1
	fi
	local src
	src=$(cd / && GOFLAGS=-mod=mod "${GO:-go}" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$src" ] || [ ! -f "$src/tests/test-random-fuse.sh" ]; then
		echo "install-deps: could not download $mod through the Go module proxy" >&2
		return 1
	fi
	mkdir -p "$dir"
	local f
	for f in test-random-fuse.sh test-lib.sh gendir dumpdir; do
		install -m 0755 "$src/tests/$f" "$dir/$f"
	done
}

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	composefs_tests
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests start their own registry on 127.0.0.1; don't leave Debian's
# system service (listening on every interface) running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
# The snapshotter's test starts its own containerd with a temporary
# configuration; the service the package just installed is not needed.
if [[ " ${missing[*]} " == *" containerd "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled containerd >/dev/null 2>&1; then
	systemctl disable --now containerd >/dev/null 2>&1 || true
fi
composefs_tests
