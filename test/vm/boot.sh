# boot.sh: the boot suite of test/vm, sourced by run.sh. It boots the VM
# through gocfs's setup-root, as an image-based system boots:
#
#  1. boot_stage adds /boot-prep.sh and /bootroot (a tiny root file system:
#     busybox, image-init.sh as /sbin/init, a file only the image has) to
#     the first VM's initramfs, and boot_disk makes an empty ext4 disk with
#     the verity feature (the first VM's second disk, /dev/vdb). At the end
#     of that VM, boot-prep.sh stores /bootroot in a repository on it and
#     prints the image's digest and karg.
#  2. boot_suite builds a second initramfs (busybox, gocfs as
#     /usr/bin/composefs-setup-root, the modules, boot-init.sh as /init) and
#     boots it once per case with that disk as /dev/vda:
#       right     the karg compute-karg printed: the image's init must run,
#                 see its own file, overlayfs with verity=require, /etc
#                 (overlay) and /var (bind) writes in the image's state
#                 directory (checked on the disk afterwards with debugfs)
#       wrong     a digest one hex digit off: setup-root must refuse with its
#                 message, and the image's init must never run
#       insecure  composefs=?DIGEST: boots without verity=require, and
#                 setup-root says so on the console
#       tamper    the initramfs replaces the object of one file on the disk
#                 first: reading it in the booted system must fail with EIO
#     and prints GOCFS-VM-BOOT-CASE lines and one verdict line:
#       GOCFS-VM-BOOT: PASS n=<cases> fail=0
# GOCFS_VM_BOOT=0 skips the suite; GOCFS_VM_BOOT_TIMEOUT (default 150)
# bounds each boot.

BOOT_SUITE=${GOCFS_VM_BOOT-1}
[ "$BOOT_SUITE" = 0 ] && BOOT_SUITE=
BOOT_TIMEOUT=${GOCFS_VM_BOOT_TIMEOUT:-150}
BOOT_DISK=$BUILD/boot.img
BOOT_DRIVE=()

# boot_stage IR: the boot suite's part of the first VM's initramfs.
boot_stage() {
	local ir=$1 br=$1/bootroot
	mkdir -p "$br"/{bin,sbin,usr/share/gocfs,etc,var,proc,sys,dev,run,tmp,sysroot,boot}
	cp "$BUSYBOX" "$br/bin/busybox"
	cp "$HERE/image-init.sh" "$br/sbin/init"
	chmod 0755 "$br/sbin/init"
	echo "only the gocfs boot image has this" > "$br/usr/share/gocfs/image-only"
	# More than 64 bytes, so that it is an object, not inline in the image.
	{ echo "gocfs tamper target"; seq 1 100; } > "$br/usr/share/gocfs/tamper-target"
	echo gocfs-boot > "$br/etc/hostname"
	cp "$HERE/boot-prep.sh" "$ir/boot-prep.sh"
	chmod 0755 "$ir/boot-prep.sh"
}

# boot_disk: the empty disk boot-prep.sh fills.
boot_disk() {
	rm -f "$BOOT_DISK"
	truncate -s 64M "$BOOT_DISK"
	mkfs.ext4 -q -F -b 4096 -O verity -L gocfsboot "$BOOT_DISK"
	BOOT_DRIVE=(-drive "file=$BOOT_DISK,format=raw,if=virtio,cache=unsafe")
}

# boot_initramfs IR: the boot suite's initramfs, with the modules of the
# first VM's initramfs IR.
boot_initramfs() {
	local ir=$1 bir=$BUILD/boot-initramfs
	rm -rf "$bir"
	mkdir -p "$bir"/{bin,usr/bin,usr/lib/composefs,dev,proc,sys,lib}
	cp "$BUSYBOX" "$bir/bin/busybox"
	cp "$BUILD/gocfs" "$bir/bin/gocfs"
	ln -s /bin/gocfs "$bir/usr/bin/composefs-setup-root"
	cp -r "$ir/lib/modules" "$bir/lib/"
	cp "$HERE/boot-init.sh" "$bir/init"
	chmod 0755 "$bir/init"
	printf '[etc]\nmount = "overlay"\n[var]\nmount = "bind"\n' > "$bir/usr/lib/composefs/setup-root-conf.toml"
	(cd "$bir" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$BUILD/boot-initramfs.cpio"
}

# boot_case NAME KARG: boots once; sets BLOG to the cleaned serial log and
# BRC to qemu's exit status.
boot_case() {
	local name=$1 karg=$2 log b0
	log=$WORK/boot-$name.log
	b0=$(now_ms)
	set +e
	timeout --kill-after=5 "$BOOT_TIMEOUT" qemu-system-x86_64 \
		-accel tcg -m 512 -smp 1 -nographic -no-reboot -nic none \
		-monitor none -serial "file:$log" \
		-kernel "$VMLINUZ" -initrd "$BUILD/boot-initramfs.cpio" \
		-append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init $karg gocfs.case=$name" \
		-drive "file=$BOOT_DISK,format=raw,if=virtio,cache=unsafe" \
		</dev/null >"$WORK/qemu-boot-$name.out" 2>&1
	BRC=$?
	set -e
	BLOG=$WORK/boot-$name.clean.log
	tr -d '\r' < "$log" > "$BLOG" 2>/dev/null || : > "$BLOG"
	say "boot case $name: qemu exited with status $BRC after $(secs "$b0")s"
}

# boot_judge NAME DIGEST: prints the case's verdict line; fails unless PASS.
boot_judge() {
	local name=$1 d=$2 why=
	[ "$BRC" = 0 ] || why="$why qemu-status=$BRC"
	local img pass
	img=$(grep -c "^GOCFS-BOOT-IMAGE: case=$name " "$BLOG" || true)
	pass=$(grep -cx "GOCFS-BOOT-IMAGE: case=$name RESULT PASS" "$BLOG" || true)
	if [ "$name" = wrong ]; then
		[ "$img" = 0 ] || why="$why the-image's-init-ran-with-a-wrong-karg"
		grep -q "^GOCFS-BOOT-INITRAMFS: case=wrong setup-root FAILED" "$BLOG" || why="$why setup-root-did-not-refuse"
		grep -q "composefs-setup-root: setup-root: mounting the image: boot: no image named on the kernel command line" "$BLOG" ||
			why="$why no-setup-root-message"
	else
		[ "$pass" = 1 ] || why="$why image-init-did-not-PASS"
		if grep -q "^GOCFS-BOOT-IMAGE: case=$name check .* FAIL" "$BLOG"; then why="$why failed-checks"; fi
	fi
	case $name in
	right)
		grep -q "composefs-setup-root: mounted image $d .*(fs-verity required" "$BLOG" || why="$why no-verity-mount-message"
		# The writes reached the image's state directory on the disk.
		[ "$(debugfs -R "cat /state/deploy/$d/etc/upper/gocfs-boot-right" "$BOOT_DISK" 2>/dev/null)" = right ] || why="$why /etc-write-not-in-state"
		[ "$(debugfs -R "cat /state/deploy/$d/var/gocfs-boot-right" "$BOOT_DISK" 2>/dev/null)" = right ] || why="$why /var-write-not-in-state"
		;;
	insecure)
		grep -q "composefs-setup-root: WARNING: INSECURE BOOT" "$BLOG" || why="$why no-insecure-warning"
		;;
	esac
	if [ -z "$why" ]; then
		echo "GOCFS-VM-BOOT-CASE: $name PASS"
		return 0
	fi
	echo "GOCFS-VM-BOOT-CASE: $name FAIL$why"
	echo "---- serial console of boot case $name ($WORK/boot-$name.log), last 40 lines ----"
	tail -n 40 "$BLOG"
	return 1
}

# boot_suite CLEANLOG IR: runs the cases after the first VM, whose serial
# log CLEANLOG has boot-prep.sh's line; prints the verdict and fails unless
# every case passed.
boot_suite() {
	local clog=$1 ir=$2 prep d karg n=0 fail=0
	prep=$(grep '^GOCFS-VM-BOOTPREP: ' "$clog" | tail -n1 || true)
	case "$prep" in
	"GOCFS-VM-BOOTPREP: OK "*) ;;
	*)
		echo "test-vm: the boot suite's disk was not prepared: ${prep:-no GOCFS-VM-BOOTPREP line}"
		echo "GOCFS-VM-BOOT: FAIL n=0 fail=0 (no disk)"
		return 1
		;;
	esac
	d=$(echo "$prep" | sed -n 's/.* digest=\([0-9a-f]*\) .*/\1/p')
	karg=$(echo "$prep" | sed -n 's/.* karg=\([^ ]*\) .*/\1/p')
	[ ${#d} = 64 ] && [ -n "$karg" ] || { echo "GOCFS-VM-BOOT: FAIL n=0 fail=0 (bad prep line: $prep)"; return 1; }
	local other=0
	[ "${d: -1}" = 0 ] && other=1
	boot_initramfs "$ir"
	local -A KARGS=(
		[right]=$karg
		[wrong]="composefs.digest=v1-sha256-12:${d%?}$other"
		[insecure]="composefs=?$d"
		[tamper]=$karg
	)
	# tamper last: it changes the disk.
	for c in right wrong insecure tamper; do
		n=$((n + 1))
		boot_case "$c" "${KARGS[$c]}"
		boot_judge "$c" "$d" || fail=$((fail + 1))
	done
	if [ "$fail" = 0 ]; then
		echo "GOCFS-VM-BOOT: PASS n=$n fail=0"
		return 0
	fi
	echo "GOCFS-VM-BOOT: FAIL n=$n fail=$fail"
	return 1
}
