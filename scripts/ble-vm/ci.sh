#!/usr/bin/env bash
# CI: the full BLE dfu against a real bluetoothd. Builds the static release binary, builds the VM
# (or reuses VM_DIR when it already holds a VM packed with this repository's init), boots it and
# runs dfu.sh: smpctl simulate --ble on hci0, smpctl scan / image list / dfu on hci1.
# Exits non-zero when any step fails. About 2–3 minutes with a kept VM and build.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export VM_DIR=${VM_DIR:-$REPO/.build-vm}
cd "$REPO"
start=$(date +%s)
echo "ci: building the static release binary"
swift build -c release --static-swift-stdlib --product smpctl 2>&1 | grep -E "error|warning: unre|Build complete|Compiling smpctl" || true
[ -x .build/release/smpctl ] || { echo "ci: the release build failed"; exit 1; }
# Rebuild only when the VM is missing or was packed with another init; a VM someone else owns
# (VM_DIR pointing elsewhere) is only read, never repacked, when it is current.
if [ -f "$VM_DIR/vmlinuz" ] && [ -f "$VM_DIR/initramfs.cpio.zst" ] && cmp -s scripts/ble-vm/init "$VM_DIR/stage/init"; then
    echo "ci: reusing the VM in $VM_DIR"
else
    echo "ci: building the VM in $VM_DIR"
    scripts/ble-vm/build-vm.sh
fi
mkdir -p .build
export VM_LOG=${VM_LOG:-$REPO/.build/ble-vm-console.log}
# hci0 (peripheral) and hci1 (central), and hci2-hci4 for the step with two peripherals at once
# (scripts/ble-vm/README.md); VM_CONTROLLERS=2 leaves that step out.
export VM_CONTROLLERS=${VM_CONTROLLERS:-5}
status=0
scripts/ble-vm/run-in-vm.sh scripts/ble-vm/dfu.sh || status=$?
echo "ci: BLE dfu test $([ "$status" -eq 0 ] && echo passed || echo "FAILED ($status)") in $(( $(date +%s) - start )) s; console log: $VM_LOG"
exit "$status"
