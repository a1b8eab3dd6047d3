#!/bin/busybox sh
# /init of the boot suite's initramfs (see boot.sh): mounts the disk at
# /sysroot as an initramfs does, runs gocfs as composefs-setup-root (karg
# from /proc/cmdline, configuration /usr/lib/composefs/setup-root-conf.toml)
# and switches root to the image's /sbin/init; when setup-root refuses, it
# says so and powers off. gocfs.case=tamper on the command line first
# replaces the object of /usr/share/gocfs/tamper-target on the disk.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# gocfs's mount uses a temporary directory on kernels before 6.15.
mkdir -p /tmp
for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "GOCFS-BOOT-INITRAMFS: insmod $m FAILED"
done
for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
echo 1 > /proc/sys/kernel/printk
case=$(sed -n 's/.*gocfs\.case=\([a-z]*\).*/\1/p' /proc/cmdline)
say() { echo "GOCFS-BOOT-INITRAMFS: case=$case $*"; }
off() { sync; poweroff -f; }
mkdir -p /sysroot
mount -t ext4 /dev/vda /sysroot || { say "cannot mount /dev/vda"; off; }
if [ "$case" = tamper ]; then
	obj=/sysroot/composefs/objects/$(cat /sysroot/gocfs-tamper-object)
	echo "TAMPERED: this is not the content the image names" > /sysroot/tampered.tmp
	mv /sysroot/tampered.tmp "$obj" && say "replaced object $obj"
fi
say "running composefs-setup-root"
composefs-setup-root
rc=$?
if [ $rc = 0 ]; then
	say "setup-root OK; switching root"
	exec switch_root /sysroot /sbin/init
fi
say "setup-root FAILED (rc=$rc); not booting"
umount /sysroot
off
