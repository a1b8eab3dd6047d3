#!/bin/bash
# run.sh: gocfs's fs-verity harness. Boots a throwaway Debian 6.12 kernel under
# qemu (TCG) with an initramfs holding the gocfs CLI and the static guest test
# binary, and fails unless the guest reports "GOCFS-VM-RESULT: PASS".
#
# Usage: test/vm/run.sh            (what `make test-vm` runs; needs root for apt-get)
# Environment:
#   GOCFS_VM_KERNEL_PKG   exact kernel package to use (default: newest
#                         linux-image-6.12.*-amd64-unsigned known to apt)
#   GOCFS_VM_REFRESH=1    look for a newer kernel even if one is cached
#   GOCFS_VM_TIMEOUT      seconds before the VM is killed (default 150)
#   GOCFS_VM_TEST_RUN     passed to the guest as -test.run (default: all tests)
#   GOCFS_VM_NO_APT=1     never call apt-get (tools and a cached kernel must exist)
#   GOCFS_VM_PKGS         packages whose fs-verity tests the guest runs after
#                         guest.test (default "mount fuse repo"; "" for none)
#   GOCFS_VM_BOOT=0       skip the boot suite (boot.sh); GOCFS_VM_BOOT_TIMEOUT
#                         bounds each of its boots (default 150)
# See test/vm/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$HERE/work
BUILD=$WORK/build
LOG=$WORK/serial.log
TIMEOUT=${GOCFS_VM_TIMEOUT:-150}
# Modules the guest loads, in addition to their depends= closure. Anything
# listed in modules.builtin is skipped; anything else missing is an error.
# crc32c_generic must be there before ext4 (there is no modprobe in the guest
# to fetch the "crc32c" crypto driver ext4 asks for); crc32c_intel is not
# usable under TCG.
MODULES=(crc32c_generic virtio_pci virtio_blk ext4 erofs overlay loop)
# Package tests that need a kernel and a file system with fs-verity (they skip
# on a host without it), run by the guest after guest.test: package, then the
# -test.run pattern. Every test the pattern selects must PASS in the guest: a
# FAIL or a SKIP (of a test or subtest) fails the run.
PKGS=${GOCFS_VM_PKGS-mount fuse repo}
declare -A PKG_RUN=(
	[mount]='^TestMountWithFsverity$'
	[fuse]='^(TestDigest|TestMountMatchesKernel)$'
	[repo]='^(TestInitLayout|TestCreateImage|TestObjectWriterAndLockedCommit|TestMountVerity)$'
)
# Left out on purpose: fuse's TestTamperedObject and repo's TestFsckCorruption
# corrupt objects by writing them, which fs-verity forbids (EPERM).
for p in $PKGS; do
	[ -n "${PKG_RUN[$p]:-}" ] || die "GOCFS_VM_PKGS: no test selection for package $p (known: ${!PKG_RUN[*]})"
done

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { local d=$(($(now_ms) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
T0=$(now_ms)
say() { printf '[test-vm %6ss] %s\n' "$(secs "$T0")" "$*"; }
die() { echo "test-vm: ERROR: $*" >&2; exit 1; }

# The boot suite: boots through gocfs's setup-root (boot.sh).
# shellcheck source=boot.sh
. "$HERE/boot.sh"

GO=$(command -v "${GO:-go}" || command -v /usr/local/go/bin/go || true)
[ -n "$GO" ] || die "go toolchain not found (put go in PATH or set GO=/path/to/go)"
mkdir -p "$WORK/apt" "$BUILD"

# ------------------------------------------------------------- go binaries
# Built in the background while apt and the kernel download run.
BPID=
say "building gocfs and the test binaries (static; log in $WORK/build.log)"
rm -f "$BUILD/gocfs" "$BUILD/guest.test"
for p in "${!PKG_RUN[@]}"; do rm -f "$BUILD/$p.test"; done
PKGARGS=
for p in $PKGS; do PKGARGS+=" ./$p"; done
# setsid: its own process group, so that an early exit can stop all of it.
# GOTMPDIR: the go command's scratch space stays out of a shared /tmp, where
# a cleaner could pull freshly compiled packages from under it.
export GOTMPDIR=${GOTMPDIR:-$WORK/gotmp}
mkdir -p "$GOTMPDIR"
GOBUILD='
	cd "$1" && export CGO_ENABLED=0 &&
	"$2" build -o "$3/gocfs" ./cmd/gocfs &&
	"$2" test -c -tags vmguest -o "$3/guest.test" ./test/vm/guest &&
	if [ -n "$4" ]; then "$2" test -c -o "$3/" $4; fi
'
setsid bash -c "$GOBUILD" build "$ROOT" "$GO" "$BUILD" "$PKGARGS" >"$WORK/build.log" 2>&1 &
BPID=$!
stop_build() {
	if [ -n "$BPID" ]; then kill -TERM -- "-$BPID" 2>/dev/null || true; fi
}
trap stop_build EXIT
wait_build() {
	local rc=0
	wait "$BPID" || rc=$?
	BPID=
	# A package that vanished from the build's scratch space or cache (seen
	# with a fresh GOCACHE on a busy shared machine) is worth one more try.
	if [ "$rc" != 0 ] && grep -q '(open : no such file or directory)' "$WORK/build.log"; then
		say "go build lost a compiled package; building once more"
		rc=0
		bash -c "$GOBUILD" build "$ROOT" "$GO" "$BUILD" "$PKGARGS" >"$WORK/build.log" 2>&1 || rc=$?
	fi
	if [ "$rc" != 0 ]; then
		cat "$WORK/build.log" >&2
		die "building the Go binaries failed"
	fi
}

# ---------------------------------------------------------------- host tools
APT_UPDATED=
apt_update() {
	[ -n "$APT_UPDATED" ] && return 0
	[ -n "${GOCFS_VM_NO_APT:-}" ] && die "apt-get needed but GOCFS_VM_NO_APT is set"
	say "apt-get update"
	apt-get update -qq || die "apt-get update failed"
	APT_UPDATED=1
}

need_pkgs=()
have_pkg() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }
for p in qemu-system-x86 busybox-static e2fsprogs xz-utils; do
	have_pkg "$p" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing packages (${need_pkgs[*]}); run as root so they can be installed"
	apt_update
	say "apt-get install ${need_pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
		die "apt-get install ${need_pkgs[*]} failed"
fi
for c in qemu-system-x86_64 mkfs.ext4 xz dpkg-deb timeout; do
	command -v "$c" >/dev/null || die "$c not found"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX (busybox-static) not found"
# A dynamically linked busybox would not run in the initramfs (no libc there).
if "$BUSYBOX" true 2>/dev/null && command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked; install busybox-static"
fi

# ------------------------------------------------------------------- kernel
# Newest linux-image-6.12.X+debNN-amd64-unsigned (not -cloud-, not -rt-).
KPKG=${GOCFS_VM_KERNEL_PKG:-}
DEB=
if [ -z "$KPKG" ] && [ -z "${GOCFS_VM_REFRESH:-}" ]; then
	DEB=$(ls "$WORK"/apt/linux-image-6.12.*-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -n1 || true)
fi
if [ -z "$DEB" ] && [ -n "$KPKG" ]; then
	DEB=$(ls "$WORK/apt/${KPKG}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
fi
if [ -z "$DEB" ]; then
	apt_update
	if [ -z "$KPKG" ]; then
		KPKG=$(apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[^-]+-amd64-unsigned$' | sort -V | tail -n1 || true)
		[ -n "$KPKG" ] || die "apt knows no linux-image-6.12.*-amd64-unsigned package (is bookworm-security or bookworm-backports in sources.list?)"
	fi
	say "apt-get download $KPKG"
	(cd "$WORK/apt" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG") || die "apt-get download $KPKG failed"
	DEB=$(ls "$WORK/apt/${KPKG}"_*.deb | sort -V | tail -n1)
fi
KPKG=$(basename "$DEB"); KPKG=${KPKG%%_*}
KVER=${KPKG#linux-image-}; KVER=${KVER%-unsigned}
KROOT=$WORK/kernel/$KVER
if [ ! -e "$KROOT/.unpacked" ]; then
	say "unpacking $(basename "$DEB")"
	rm -rf "$KROOT"; mkdir -p "$KROOT"
	dpkg-deb -x "$DEB" "$KROOT"
	touch "$KROOT/.unpacked"
fi
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
KMOD=$(ls -d "$KROOT"/lib/modules/"$KVER" "$KROOT"/usr/lib/modules/"$KVER" 2>/dev/null | head -n1 || true)
[ -f "$VMLINUZ" ] && [ -n "$KMOD" ] || die "$DEB does not hold boot/vmlinuz-$KVER and lib/modules/$KVER"
say "kernel $KVER"

wait_build
say "built gocfs, guest.test${PKGS:+ and the tests of $PKGS}"

# ---------------------------------------------------------------- initramfs
IR=$BUILD/initramfs
rm -rf "$IR"
mkdir -p "$IR"/{bin,dev,proc,sys,tmp,mnt,lib/modules}
cp "$BUSYBOX" "$IR/bin/busybox"
cp "$BUILD/gocfs" "$BUILD/guest.test" "$IR/bin/"
# The package tests build their images with GOCFS_TEST_MKCOMPOSEFS=/bin/mkcomposefs
# (gocfs in its mkcomposefs personality): there is no go toolchain in the guest.
ln -s gocfs "$IR/bin/mkcomposefs"
: > "$IR/pkg-tests"
for p in $PKGS; do
	cp "$BUILD/$p.test" "$IR/bin/"
	printf '%s %s\n' "$p" "${PKG_RUN[$p]}" >> "$IR/pkg-tests"
done
cp "$HERE/init.sh" "$IR/init"
chmod 0755 "$IR/init"
# The guest test refuses to run (and touch /dev/vda) without this marker.
echo "gocfs test VM" > "$IR/gocfs-vm-guest"
printf '%s\n' "${GOCFS_VM_TEST_RUN:-}" > "$IR/test-run"

declare -A MODPATH
while IFS= read -r -d '' f; do
	n=${f##*/}; n=${n%%.ko*}; MODPATH[${n//-/_}]=$f
done < <(find "$KMOD/kernel" -name '*.ko*' -print0)
BUILTIN=" $(sed -E 's#.*/##; s#\.ko$##; s#-#_#g' "$KMOD/modules.builtin" | tr '\n' ' ') "
modcat() { case "$1" in *.xz) xz -dc "$1" ;; *.zst) zstd -dc "$1" ;; *.gz) gzip -dc "$1" ;; *) cat "$1" ;; esac; }
ORDER=()
declare -A SEEN
add_module() {
	local m=${1//-/_} deps d
	[ -n "${SEEN[$m]:-}" ] && return 0
	SEEN[$m]=1
	if [[ "$BUILTIN" == *" $m "* ]]; then return 0; fi
	[ -n "${MODPATH[$m]:-}" ] || die "kernel module $m is neither built in nor in $KPKG"
	deps=$(modcat "${MODPATH[$m]}" | tr '\0' '\n' | grep -a -m1 '^depends=' || true)
	deps=${deps#depends=}
	for d in ${deps//,/ }; do add_module "$d"; done
	modcat "${MODPATH[$m]}" > "$IR/lib/modules/$m.ko"
	ORDER+=("$m")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" > "$IR/lib/modules/order"
say "modules: ${ORDER[*]}"
[ -n "$BOOT_SUITE" ] && boot_stage "$IR"
# Uncompressed: the kernel unpacks it faster than it would inflate it under TCG.
(cd "$IR" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$BUILD/initramfs.cpio"

# -------------------------------------------------------------- data disk
# Empty ext4 with the verity feature and 4 KiB blocks (small images would
# otherwise get 1 KiB blocks); the guest builds everything on it.
DISK=$BUILD/disk.img
rm -f "$DISK"; truncate -s 256M "$DISK"
mkfs.ext4 -q -F -b 4096 -O verity -L gocfsvm "$DISK"
[ -n "$BOOT_SUITE" ] && boot_disk

# --------------------------------------------------------------------- boot
say "booting qemu (tcg, timeout ${TIMEOUT}s)"
rm -f "$LOG"
B0=$(now_ms)
set +e
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 \
	-accel tcg -m 1024 -smp 1 -nographic -no-reboot -nic none \
	-monitor none -serial "file:$LOG" \
	-kernel "$VMLINUZ" -initrd "$BUILD/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init" \
	-drive "file=$DISK,format=raw,if=virtio,cache=unsafe" "${BOOT_DRIVE[@]}" \
	</dev/null >"$WORK/qemu.out" 2>&1
QRC=$?
set -e
BOOT=$(secs "$B0")
say "qemu exited with status $QRC after ${BOOT}s"

# ------------------------------------------------------------------ verdict
# Strict: PASS only with exactly one well-formed PASS summary, no FAIL summary,
# no failing test line, and a qemu that exited by itself (not killed by timeout).
CLEAN=$WORK/serial.clean.log
tr -d '\r' < "$LOG" > "$CLEAN" 2>/dev/null || : > "$CLEAN"
awk '/^=== GOCFS-VM-TEST-END/{on=0} on{print} /^=== GOCFS-VM-TEST-BEGIN/{on=1}' "$CLEAN"
npass=$(grep -cE '^GOCFS-VM-RESULT: PASS n=[1-9][0-9]* fail=0$' "$CLEAN" || true)
nfailsum=$(grep -c '^GOCFS-VM-RESULT: FAIL' "$CLEAN" || true)
nfailtest=$(grep -cE '^[[:space:]]*--- FAIL' "$CLEAN" || true)
# Every suite (guest.test, then each package's tests) reports PASS, and no
# package test or subtest was skipped: those that run in the VM must run.
suites_ok=1
for s in guest $PKGS; do
	if [ "$(grep -cE "^GOCFS-VM-SUITE: $s PASS n=[1-9][0-9]*\$" "$CLEAN" || true)" != 1 ]; then
		suites_ok=
		echo "test-vm: suite $s did not report PASS exactly once"
	fi
done
npkgskip=$(awk '/^=== GOCFS-VM-PKG /{on=1} /^=== GOCFS-VM-TEST-END/{on=0} on && /^[[:space:]]*--- SKIP/' "$CLEAN" | wc -l)
verdict=FAIL
if [ "$QRC" = 0 ] && [ "$npass" = 1 ] && [ "$nfailsum" = 0 ] && [ "$nfailtest" = 0 ] &&
	[ -n "$suites_ok" ] && [ "$npkgskip" = 0 ]; then
	verdict=PASS
fi
if [ "$verdict" != PASS ]; then
	echo
	echo "---------------- serial console outside the test output (last 100 lines; all in $LOG) ----------------"
	awk '/^=== GOCFS-VM-TEST-BEGIN/{skip=1; print "[... test output above ...]"} !skip{print} /^=== GOCFS-VM-TEST-END/{skip=0}' "$CLEAN" | tail -n 100
	echo "---------------- qemu output ($WORK/qemu.out) ----------------"
	tail -n 20 "$WORK/qemu.out"
	echo "-------------------------------------------------------------------------"
	if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
		echo "test-vm: the VM did not power off within ${TIMEOUT}s (killed by timeout)"
	fi
	if [ "$npkgskip" != 0 ]; then
		echo "test-vm: $npkgskip package test(s) skipped in the VM, where they must run"
	fi
	if [ "$npass" = 0 ] && [ "$nfailsum" = 0 ]; then
		echo "test-vm: no GOCFS-VM-RESULT line: the guest never finished (see the log above)"
	fi
fi
grep -E '^GOCFS-VM-(SUITE|RESULT|READS|VERDICT|BOOTPREP):' "$CLEAN" || true
if [ -n "$BOOT_SUITE" ]; then
	say "boot suite: one boot per case through gocfs setup-root (timeout ${BOOT_TIMEOUT}s each)"
	boot_suite "$CLEAN" "$IR" || verdict=FAIL
fi
say "test-vm: $verdict (kernel $KVER, boot round trip ${BOOT}s)"
[ "$verdict" = PASS ]
