#!/bin/sh
# Regenerates the golden images and the expected composefs-info output with
# upstream composefs (mkcomposefs, composefs-info). Usage:
#   PATH=/opt/upstream-cfs/bin:$PATH sh gen.sh /path/to/composefs-assets
# NAME.img is built from NAME.dump (or the asset of that name); NAME.dump.out,
# NAME.ls.out and NAME.objects.out are upstream's "composefs-info dump", "ls"
# and "objects" output for it. Two exceptions, where upstream's reader has a
# bug gocfs does not reproduce: upstream reads two bytes past the redirect
# values of redirect-odd, and drops the last xattr of xattr-tail (an entry
# of exactly 4 bytes at the end of the inline xattr area); their expected
# output is upstream's with those bugs fixed.
set -eu
assets=$1
for a in special special_v1 no-newline longlink bigfile bigfile-xattr \
	honggfuzz-bigfile-with-acl honggfuzz-chardev-nonzero-size \
	honggfuzz-long-symlink honggfuzz-longlink-unterminated; do
	v=""
	if [ -f "$assets/$a.dump.version" ]; then
		n=$(cat "$assets/$a.dump.version")
		v="--min-version=$n --max-version=$n"
	fi
	mkcomposefs $v --from-file "$assets/$a.dump" "$a.img"
done
mkcomposefs --from-file mixed.dump mixed.img
mkcomposefs --min-version=1 --from-file mixed.dump mixed_v1.img
mkcomposefs --from-file hardlinks.dump hardlinks.img
mkcomposefs --from-file redirect-odd.dump redirect-odd.img
mkcomposefs --from-file xattr-tail.dump xattr-tail.img
for i in *.img; do
	n=${i%.img}
	for c in dump ls objects; do
		composefs-info $c "$i" > "$n.$c.out"
	done
done
for c in dump ls; do
	sed -e 's/abc\\x01\\x01/abc/; s/abcdefg\\xff\\xff/abcdefg/' redirect-odd.$c.out > t && mv t redirect-odd.$c.out
done
printf 'abc\nabcdefg\n' > redirect-odd.objects.out
sed -i 's/security.a=b$/security.a=b user.=/' xattr-tail.dump.out
