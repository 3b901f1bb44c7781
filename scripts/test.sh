#!/usr/bin/env bash
# Runs every test: the Swift suites (codec, transports, client, simulator, D-Bus and fake-BlueZ,
# diagnosis, CLI, man pages), the interoperability test against PyPI's smpclient, and the BLE dfu
# against a real bluetoothd in a small VM (needs root for debootstrap and qemu; set
# SMPCTL_SKIP_BLE_VM=1 to leave it out).
# After the Swift tests come two hardening phases: the suites again under AddressSanitizer and
# ThreadSanitizer (scripts/sanitize.sh all --ci, the subset that fits CI's time; set
# SMPCTL_SKIP_SANITIZERS=1 to leave it out) and a brief libFuzzer run of every fuzz target
# (scripts/fuzz.sh 20; set SMPCTL_SKIP_FUZZ=1 to leave it out). See FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
banner() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%H:%M:%S)"; }
banner "build with tests"
swift build --build-tests
banner "Swift tests (incl. 24 seeded upload fault schedules; scripts/property.sh runs thousands)"
swift test --skip-build
if [ "${SMPCTL_SKIP_SANITIZERS:-0}" = 1 ]; then
    echo "sanitizer runs skipped (SMPCTL_SKIP_SANITIZERS=1)"
else
    banner "Swift tests under AddressSanitizer and ThreadSanitizer (scripts/sanitize.sh all --ci)"
    scripts/sanitize.sh all --ci
fi
if [ "${SMPCTL_SKIP_FUZZ:-0}" = 1 ]; then
    echo "fuzzing skipped (SMPCTL_SKIP_FUZZ=1)"
else
    banner "fuzz every parser for 20 s (scripts/fuzz.sh 20)"
    scripts/fuzz.sh 20
fi
banner "interoperability with PyPI smpclient"
python3 Tests/Interop/smpclient_interop.py .build/debug/smpctl
if [ "${SMPCTL_SKIP_BLE_VM:-0}" = 1 ]; then
    echo "BLE VM test skipped (SMPCTL_SKIP_BLE_VM=1)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "BLE VM test skipped: it needs root (debootstrap, qemu); run scripts/ble-vm/ci.sh as root"
else
    banner "BLE dfu against a real bluetoothd in a VM"
    scripts/ble-vm/ci.sh
fi
