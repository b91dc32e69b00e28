#!/bin/bash
# Build the test guest: Debian's cloud kernel (unpacked by scripts/install-deps.sh, never
# installed) and a busybox initramfs whose /init is guest/init.sh.
#   build.sh OUTDIR        writes OUTDIR/vmlinuz and OUTDIR/initrd.img
# Env: FERRY_GUEST_KERNEL (default /var/cache/ferry/guest-kernel), FERRY_BUSYBOX (default /bin/busybox)
set -euo pipefail
OUT=${1:?usage: build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
KROOT=${FERRY_GUEST_KERNEL:-/var/cache/ferry/guest-kernel}
BUSYBOX=${FERRY_BUSYBOX:-/bin/busybox}
[ -d "$KROOT/lib/modules" ] || { echo "guest kernel not unpacked in $KROOT: run scripts/install-deps.sh" >&2; exit 1; }
[ -x "$BUSYBOX" ] || { echo "no static busybox at $BUSYBOX: run scripts/install-deps.sh" >&2; exit 1; }
KV=$(ls "$KROOT/lib/modules" | sort -V | tail -1)
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,mods,etc}
cp "$BUSYBOX" "$R/bin/busybox"
M=$KROOT/lib/modules/$KV/kernel
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
         drivers/input/evdev drivers/acpi/button; do
    cp "$M/$m.ko" "$R/mods/"
done
cp "$HERE/init.sh" "$R/init"
chmod 755 "$R/init"
# device nodes needed before devtmpfs is mounted
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
(cd "$R" && find . | "$R/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$WORK/initrd.img")
cp "$KROOT/boot/vmlinuz-$KV" "$OUT/vmlinuz.new" && mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
mv "$WORK/initrd.img" "$OUT/initrd.img"
echo "guest built: kernel $KV, initrd $(stat -c %s "$OUT/initrd.img") bytes in $OUT"
