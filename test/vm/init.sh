#!/bin/busybox sh
# /init of the gocfs test VM (see run.sh). Loads the modules, runs the guest
# test binary, then the package test binaries listed in /pkg-tests (on the
# ext4 verity disk), prints one GOCFS-VM-SUITE line per binary and one summary
# line that run.sh parses:
#   GOCFS-VM-RESULT: PASS n=<tests run> fail=0
#   GOCFS-VM-RESULT: FAIL n=<tests run> fail=<failed> failed suites: <names>
# then powers off. If this script dies, the kernel panics and (panic=-1,
# qemu -no-reboot) the VM exits without a PASS line, which run.sh reports.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /mnt/data
echo "GOCFS-VM: guest up: kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime)s"

for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "GOCFS-VM: insmod $m FAILED"
done
for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
[ -b /dev/vda ] || echo "GOCFS-VM: no /dev/vda"
echo "GOCFS-VM: modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

# Keep kernel messages off the console while tests print; they are dumped below.
echo 1 > /proc/sys/kernel/printk

[ -c /dev/fuse ] || mknod /dev/fuse c 10 229
echo "GOCFS-VM: fuse: $(grep -c fuse /proc/filesystems) entries in /proc/filesystems, /dev/fuse $([ -c /dev/fuse ] && echo present || echo MISSING)"

# suite NAME LOG: checks one test binary's output; prints its summary line
#   GOCFS-VM-SUITE: NAME PASS n=<tests run>
#   GOCFS-VM-SUITE: NAME FAIL n=.. fail=.. skip=.. rc=.. [reason]
# and adds to the totals. With strict=1 (the package tests) a SKIP fails the
# suite too: the tests picked for the VM are the ones that skip elsewhere.
total=0 totalfail=0 bad=
suite() {
	name=$1 log=$2 strict=$3
	rc=$(cat /tmp/rc 2>/dev/null || echo missing)
	rm -f /tmp/rc
	pass=$(grep -cE '^ *--- PASS' "$log")
	fail=$(grep -cE '^ *--- FAIL' "$log")
	skip=$(grep -cE '^ *--- SKIP' "$log")
	n=$((pass + fail))
	total=$((total + n)); totalfail=$((totalfail + fail))
	why=
	[ "$n" = 0 ] && why=" no tests ran"
	[ "$strict" = 1 ] && [ "$skip" != 0 ] && why="$why skipped: $(grep -E '^ *--- SKIP' "$log" | sed -E 's/^ *--- SKIP: ([^ ]*).*/\1/' | tr '\n' ' ')"
	grep -q '^panic: ' "$log" && why="$why test binary panicked (timeout?)"
	if [ "$rc" = 0 ] && [ "$fail" = 0 ] && [ -z "$why" ] && grep -q '^PASS$' "$log"; then
		echo "GOCFS-VM-SUITE: $name PASS n=$n"
	else
		echo "GOCFS-VM-SUITE: $name FAIL n=$n fail=$fail skip=$skip rc=$rc$why"
		bad="$bad $name"
	fi
}

RUN=$(cat /test-run)
cd /tmp
echo "=== GOCFS-VM-TEST-BEGIN uptime $(cut -d' ' -f1 /proc/uptime)s"
(
	GOCFS_BIN=/bin/gocfs GOCFS_VM_DISK=/dev/vda GOCFS_VM_DATA=/mnt/data \
		/bin/guest.test -test.v -test.timeout=120s ${RUN:+-test.run "$RUN"} 2>&1
	echo $? > /tmp/rc
) | tee /tmp/test.log
suite guest /tmp/test.log 0

# The package tests whose fs-verity cases skip on hosts without it, in
# directories on the verity-enabled ext4 disk (guest.test unmounted it).
if [ -s /pkg-tests ]; then
	if mount -t ext4 /dev/vda /mnt/data; then
		while read -r pkg pattern; do
			echo "=== GOCFS-VM-PKG $pkg -test.run $pattern uptime $(cut -d' ' -f1 /proc/uptime)s"
			mkdir -p /mnt/data/pkg/$pkg/tmp /mnt/data/pkg/$pkg/wd
			(
				cd /mnt/data/pkg/$pkg/wd &&
				TMPDIR=/mnt/data/pkg/$pkg/tmp GOCFS_TEST_MKCOMPOSEFS=/bin/mkcomposefs \
					/bin/$pkg.test -test.v -test.timeout=120s -test.run "$pattern" 2>&1
				echo $? > /tmp/rc
			) | tee /tmp/test-$pkg.log
			suite $pkg /tmp/test-$pkg.log 1
		done < /pkg-tests
		cd /
		umount /mnt/data || echo "GOCFS-VM: umount /mnt/data failed"
	else
		echo "GOCFS-VM-SUITE: packages FAIL cannot mount /dev/vda"
		bad="$bad packages"
	fi
fi
echo "=== GOCFS-VM-TEST-END uptime $(cut -d' ' -f1 /proc/uptime)s"

# The boot suite's disk (/dev/vdb), which run.sh boots afterwards (boot.sh).
[ -x /boot-prep.sh ] && /boot-prep.sh

echo "=== kernel messages (overlay, verity, erofs, ext4, loop, fuse)"
dmesg | grep -E 'overlay|verity|erofs|EXT4|loop[0-9]|composefs|fuse|Oops|BUG|WARNING' | tail -n 40

if [ -z "$bad" ] && [ "$totalfail" = 0 ] && [ "$total" -gt 0 ]; then
	echo "GOCFS-VM-RESULT: PASS n=$total fail=0"
else
	echo "GOCFS-VM-RESULT: FAIL n=$total fail=$totalfail failed suites:$bad"
fi
sync
poweroff -f
