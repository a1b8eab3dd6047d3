#!/bin/busybox sh
# /sbin/init of the boot suite's image (see boot.sh), run by switch_root
# from the initramfs. Proves it runs from the image and checks what the
# case (gocfs.case= on the kernel command line) expects, then powers off:
#   GOCFS-BOOT-IMAGE: case=NAME check WHAT PASS|FAIL detail
#   GOCFS-BOOT-IMAGE: case=NAME RESULT PASS|FAIL
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev
case=$($bb sed -n 's/.*gocfs\.case=\([a-z]*\).*/\1/p' /proc/cmdline)
bad=
check() { # check WHAT OK DETAIL
	if [ "$2" = 1 ]; then r=PASS; else r=FAIL; bad=1; fi
	echo "GOCFS-BOOT-IMAGE: case=$case check $1 $r $3"
}
echo "GOCFS-BOOT-IMAGE: case=$case init running from the image, pid $$"

ok=0; [ "$($bb cat /usr/share/gocfs/image-only 2>&1)" = "only the gocfs boot image has this" ] && ok=1
check image-only $ok "/usr/share/gocfs/image-only"

root=$($bb awk '$2 == "/" { l = $0 } END { print l }' /proc/mounts)
ok=0; case "$root" in *overlay*) ok=1 ;; esac
check root-overlay $ok "$root"
want=1; [ "$case" = insecure ] && want=0
has=0; case "$root" in *verity=require*) has=1 ;; esac
ok=0; [ "$has" = "$want" ] && ok=1
check root-verity $ok "verity=require present: $has, wanted: $want"

etc=$($bb awk '$2 == "/etc" { l = $0 } END { print l }' /proc/mounts)
ok=0; echo "$case" > /etc/gocfs-boot-$case && [ "$($bb cat /etc/gocfs-boot-$case)" = "$case" ] && case "$etc" in overlay*upperdir=*state/deploy*) ok=1 ;; esac
check etc-overlay $ok "$etc"
var=$($bb awk '$2 == "/var" { l = $0 } END { print l }' /proc/mounts)
ok=0; echo "$case" > /var/gocfs-boot-$case && case "$var" in "/dev/vda /var ext4"*) ok=1 ;; esac
check var-bind $ok "$var"
ok=0; err=$( (echo x > /usr/gocfs-write) 2>&1) || ok=1
check usr-read-only $ok "$err"
ok=0; [ -f /sysroot/composefs/meta.json ] && ok=1
check sysroot $ok "/sysroot/composefs/meta.json"

out=$($bb cat /usr/share/gocfs/tamper-target 2>&1); rc=$?
if [ "$case" = tamper ]; then
	ok=0; [ $rc != 0 ] && case "$out" in *"I/O error"* | *"Input/output error"*) ok=1 ;; esac
	check tampered-read-EIO $ok "rc=$rc $out"
else
	ok=0; [ $rc = 0 ] && case "$out" in "gocfs tamper target"*) ok=1 ;; esac
	check object-read $ok "rc=$rc"
fi

if [ -z "$bad" ]; then r=PASS; else r=FAIL; fi
echo "GOCFS-BOOT-IMAGE: case=$case RESULT $r"
$bb sync
$bb poweroff -f
