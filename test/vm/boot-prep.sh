#!/bin/busybox sh
# /boot-prep.sh of the gocfs test VM (see boot.sh): runs at the end of the
# first VM's /init, where the kernel has fs-verity. Makes the boot suite's
# disk (/dev/vdb, ext4 with the verity feature): a SHA-256 repository in
# composefs/ holding the image of /bootroot (objects and meta.json with
# fs-verity), the image's state directory, and the name of the object the
# tamper case replaces. Prints one line that run.sh reads:
#   GOCFS-VM-BOOTPREP: OK digest=HEX karg=KARG object=XX/REST
#   GOCFS-VM-BOOTPREP: FAIL reason
say() { echo "GOCFS-VM-BOOTPREP: $*"; }
fail() { say "FAIL $*"; umount /mnt/boot 2>/dev/null; exit 0; }
[ -b /dev/vdb ] || fail "no /dev/vdb"
mkdir -p /mnt/boot
mount -t ext4 /dev/vdb /mnt/boot || fail "cannot mount /dev/vdb"
R=/mnt/boot/composefs
gocfs --repo $R init --hash sha256 >/tmp/bootprep.log 2>&1 || fail "init: $(cat /tmp/bootprep.log)"
out=$(gocfs --repo $R create-image /bootroot os 2>&1) || fail "create-image: $out"
D=${out#sha256:}
karg=$(gocfs --repo $R compute-karg refs/os 2>&1) || fail "compute-karg: $karg"
[ "$karg" = "composefs.digest=v1-sha256-12:$D" ] || fail "compute-karg printed $karg for $D"
obj=$(gocfs composefs-info measure-file /bootroot/usr/share/gocfs/tamper-target 2>&1) || fail "measure-file: $obj"
path=$(echo "$obj" | cut -c1-2)/$(echo "$obj" | cut -c3-)
# The object must be there, with fs-verity (measure-file of the object
# must give its name; without fs-verity create-image would have said so
# and the secure boot cases would be refused anyway).
[ -f $R/objects/$path ] || fail "no object $path for the tamper target"
mkdir -p /mnt/boot/state/deploy/$D/etc/upper /mnt/boot/state/deploy/$D/etc/work /mnt/boot/state/deploy/$D/var
echo "$path" > /mnt/boot/gocfs-tamper-object
sync
umount /mnt/boot || fail "umount /mnt/boot"
say "OK digest=$D karg=$karg object=$path"
