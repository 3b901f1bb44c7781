#!/usr/bin/env bash
# Runs every test: the Swift suites (codec, transports, client, simulator, D-Bus and fake-BlueZ,
# diagnosis, CLI, man pages), the interoperability test against PyPI's smpclient, and the BLE dfu
# against a real bluetoothd in a small VM (needs root for debootstrap and qemu; set
# SMPCTL_SKIP_BLE_VM=1 to leave it out).
# With SMPCTL_HARDENING=1, two hardening phases follow the Swift tests: the suites again under
# AddressSanitizer and ThreadSanitizer (scripts/sanitize.sh all --ci, the subset that fits CI's
# time) and a brief libFuzzer run of every fuzz target (scripts/fuzz.sh 20). See FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
banner() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%H:%M:%S)"; }
banner "build with tests"
swift build --build-tests
banner "Swift tests"
swift test --skip-build --skip "UploadPropertyTests|TimingSensitiveTests"
# In a process of its own, so that the time bound each schedule computes from its link is checked
# exactly (beside the CLI suites, the cooperative pool is starved on 2 cores).
banner "timing: 24 seeded upload fault schedules with time bounds, slow-link timeouts (scripts/property.sh runs thousands)"
SMPCTL_PROPERTY_STRICT_TIME=1 swift test --skip-build --filter "UploadPropertyTests|TimingSensitiveTests"
banner "library example: a whole update through the libraries (Examples/LibraryUpdate)"
.build/debug/smpctl-library-example Examples/images/blinky-1.1.0.signed.bin
# The hardening phases (sanitizers, fuzzing) are opt-in until they have run green on the
# merged tree in CI: SMPCTL_HARDENING=1 turns them on.
if [ "${SMPCTL_HARDENING:-0}" = 1 ] && [ "${SMPCTL_SKIP_SANITIZERS:-0}" != 1 ]; then
    banner "Swift tests under AddressSanitizer and ThreadSanitizer (scripts/sanitize.sh all --ci)"
    scripts/sanitize.sh all --ci
else
    echo "sanitizer runs not run (set SMPCTL_HARDENING=1; scripts/sanitize.sh all --ci)"
fi
if [ "${SMPCTL_HARDENING:-0}" = 1 ] && [ "${SMPCTL_SKIP_FUZZ:-0}" != 1 ]; then
    banner "fuzz every parser for 20 s (scripts/fuzz.sh 20)"
    scripts/fuzz.sh 20
else
    echo "fuzzing not run (set SMPCTL_HARDENING=1; scripts/fuzz.sh 20)"
fi
banner "interoperability with PyPI smpclient"
python3 Tests/Interop/smpclient_interop.py .build/debug/smpctl
banner "the Ansible fleet example against this machine (Examples/ansible/check.sh)"
Examples/ansible/check.sh .build/debug/smpctl
if [ "${SMPCTL_SKIP_BLE_VM:-0}" = 1 ]; then
    echo "BLE VM test skipped (SMPCTL_SKIP_BLE_VM=1)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "BLE VM test skipped: it needs root (debootstrap, qemu); run scripts/ble-vm/ci.sh as root"
else
    banner "BLE dfu against a real bluetoothd in a VM"
    scripts/ble-vm/ci.sh
fi
