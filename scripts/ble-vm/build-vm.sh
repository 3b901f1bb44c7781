#!/usr/bin/env bash
# Builds a small Debian 12 VM with a real bluetoothd and two linked virtual LE controllers
# (btvirt), for the BLE integration test. Output: $VM_DIR/vmlinuz and $VM_DIR/initramfs.cpio.zst.
# Facts behind the choices: shared/reference/bluez-vm-notes.md (TCG, Debian kernel, cpio initramfs, 9p).
set -euo pipefail
VM_DIR=${VM_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.build-vm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT="$VM_DIR/rootfs"
need=()
for p in qemu-system-x86 debootstrap zstd cpio; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p "$VM_DIR"
# python3 runs the benchmark's baseline client (smpclient with bleak, scripts/ble-vm/bench.sh).
if [ ! -x "$ROOT/usr/sbin/bluetoothd" ] || [ ! -x "$ROOT/usr/bin/python3" ]; then
    rm -rf "$ROOT"
    debootstrap --variant=minbase --include=dbus,bluez,bluez-test-tools,kmod,linux-image-amd64,procps,python3 \
        bookworm "$ROOT" "$MIRROR" >"$VM_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$VM_DIR/debootstrap.log"; exit 1; }
fi
cp "$(ls "$ROOT"/boot/vmlinuz-* | head -1)" "$VM_DIR/vmlinuz"
# Keep only the kernel modules the VM needs: Bluetooth, the virtual HCI, 9p over virtio.
KVER=$(ls "$ROOT/lib/modules" | head -1)
STAGE="$VM_DIR/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE"
(cd "$ROOT" && tar --exclude=./lib/modules --exclude=./usr/lib/modules --exclude=./usr/lib/udev/hwdb.bin --exclude=./usr/share/doc --exclude=./usr/share/man \
    --exclude=./usr/share/locale --exclude=./var/cache/apt --exclude=./var/lib/apt/lists --exclude=./boot -cf - .) \
    | (cd "$STAGE" && tar -xf -)
mkdir -p "$STAGE/lib/modules/$KVER"
(cd "$ROOT/lib/modules/$KVER" && find kernel/net/bluetooth kernel/drivers/bluetooth kernel/fs/9p kernel/net/9p \
    kernel/fs/netfs kernel/fs/fscache kernel/drivers/virtio kernel/net/rfkill kernel/crypto kernel/lib -name '*.ko*' 2>/dev/null \
    | tar -cf - -T - modules.order modules.builtin modules.builtin.modinfo 2>/dev/null) | (cd "$STAGE/lib/modules/$KVER" && tar -xf -)
chroot "$STAGE" /sbin/depmod -a "$KVER"
install -m 0755 "$(dirname "$0")/init" "$STAGE/init"
(cd "$STAGE" && find . | cpio -o -H newc --quiet | zstd -q -T0 -3 -f -o "$VM_DIR/initramfs.cpio.zst")
echo "VM ready in $VM_DIR ($(du -h "$VM_DIR/initramfs.cpio.zst" | cut -f1) initramfs)"
