#!/usr/bin/env bash
# Boots the BLE test VM (built by build-vm.sh) and runs SCRIPT (a path inside the repository)
# inside it as root, with the repository shared at /mnt/host. Exits with the script's status.
# VM_APPEND adds kernel command-line words the init reads (smpctl_eatt=N, smpctl_mtu=N).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VM_DIR=${VM_DIR:-$REPO/.build-vm}
SCRIPT=${1:?usage: run-in-vm.sh SCRIPT-RELATIVE-TO-REPO}
LOG=${VM_LOG:-$VM_DIR/console.log}
timeout "${VM_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -m 1536 -smp 2 -nographic -no-reboot \
    -kernel "$VM_DIR/vmlinuz" -initrd "$VM_DIR/initramfs.cpio.zst" \
    -append "console=ttyS0 rdinit=/init quiet panic=-1 smpctl_test=$SCRIPT smpctl_controllers=${VM_CONTROLLERS:-2} ${VM_APPEND:-}" \
    -virtfs "local,path=$REPO,mount_tag=host,security_model=none" >"$LOG" 2>&1 || true
grep -v '^\s*$' "$LOG" | tail -40
status=$(sed -n 's/.*VM-EXIT-STATUS \([0-9]*\).*/\1/p' "$LOG" | tail -1)
[ -n "$status" ] || { echo "the VM did not report a status (see $LOG)"; exit 1; }
exit "$status"
