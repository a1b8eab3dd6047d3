#!/bin/busybox sh
# /init of the gocfs test VM (see run.sh). Loads the modules, runs the guest
# test binary and prints one summary line that run.sh parses:
#   GOCFS-VM-RESULT: PASS n=<tests run> fail=0
#   GOCFS-VM-RESULT: FAIL n=<tests run> fail=<failed> rc=<exit status> [reason]
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

RUN=$(cat /test-run)
cd /tmp
echo "=== GOCFS-VM-TEST-BEGIN uptime $(cut -d' ' -f1 /proc/uptime)s"
(
	GOCFS_BIN=/bin/gocfs GOCFS_VM_DISK=/dev/vda GOCFS_VM_DATA=/mnt/data \
		/bin/guest.test -test.v -test.timeout=120s ${RUN:+-test.run "$RUN"} 2>&1
	echo $? > /tmp/rc
) | tee /tmp/test.log
echo "=== GOCFS-VM-TEST-END uptime $(cut -d' ' -f1 /proc/uptime)s"

rc=$(cat /tmp/rc 2>/dev/null || echo missing)
pass=$(grep -cE '^ *--- PASS' /tmp/test.log)
fail=$(grep -cE '^ *--- FAIL' /tmp/test.log)
n=$((pass + fail))

echo "=== kernel messages (overlay, verity, erofs, ext4, loop)"
dmesg | grep -E 'overlay|verity|erofs|EXT4|loop[0-9]|composefs|Oops|BUG|WARNING' | tail -n 40

if [ "$rc" = 0 ] && [ "$fail" = 0 ] && [ "$n" -gt 0 ] && grep -q '^PASS$' /tmp/test.log; then
	echo "GOCFS-VM-RESULT: PASS n=$n fail=0"
else
	why=
	[ "$n" = 0 ] && why=" no tests ran"
	grep -q '^panic: ' /tmp/test.log && why=" test binary panicked (timeout?)"
	echo "GOCFS-VM-RESULT: FAIL n=$n fail=$fail rc=$rc$why"
fi
sync
poweroff -f
