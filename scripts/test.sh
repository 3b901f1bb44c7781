#!/usr/bin/env bash
# Runs every test: the Swift suites (codec, transports, client, simulator, D-Bus and fake-BlueZ,
# diagnosis, CLI, man pages), the interoperability test against PyPI's smpclient, and the BLE dfu
# against a real bluetoothd in a small VM (needs root for debootstrap and qemu; set
# SMPCTL_SKIP_BLE_VM=1 to leave it out), then the install check on the static binary the VM phase
# built (scripts/check-install.sh; without the VM phase only with SMPCTL_CHECK_INSTALL=1).
# With SMPCTL_HARDENING=1, two hardening phases follow the Swift tests: the suites again under
# AddressSanitizer and ThreadSanitizer (scripts/sanitize.sh all --ci, the subset that fits CI's
# time) and a brief libFuzzer run of every fuzz target (scripts/fuzz.sh 20). Without it the fuzz
# targets are still built (not run), so that none can stop compiling unnoticed. See FUZZING.md.
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
    # Built even when not run, so that a target cannot stop compiling unnoticed (fuzz-yaml did).
    banner "build the fuzz targets, none run (FUZZ_BUILD_ONLY=1 scripts/fuzz.sh; SMPCTL_HARDENING=1 runs them)"
    FUZZ_BUILD_ONLY=1 scripts/fuzz.sh
fi
banner "interoperability with PyPI smpclient"
python3 Tests/Interop/smpclient_interop.py .build/debug/smpctl
banner "the Ansible fleet example against this machine (Examples/ansible/check.sh)"
Examples/ansible/check.sh .build/debug/smpctl
vm_status=0
vm_ran=0
if [ "${SMPCTL_SKIP_BLE_VM:-0}" = 1 ]; then
    echo "BLE VM test skipped (SMPCTL_SKIP_BLE_VM=1)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "BLE VM test skipped: it needs root (debootstrap, qemu); run scripts/ble-vm/ci.sh as root"
else
    banner "BLE dfu against a real bluetoothd in a VM"
    vm_ran=1
    # The install check below runs even when this fails: it needs only the binary built first.
    scripts/ble-vm/ci.sh || vm_status=$?
fi
# The installed static binary (scripts/check-install.sh): ldd shows no toolchain library, and it
# runs from another folder with no swift on PATH. ci.sh built the static release binary in .build
# (swift build -c release --static-swift-stdlib --product smpctl); SMPCTL_RELEASE_BUILD=.build makes
# release.sh, install.sh and check-install.sh use that build (the same flags: nothing is rebuilt)
# instead of a second static build of minutes in .build-release.
if [ "$vm_ran" = 1 ] && [ -x .build/release/smpctl ]; then
    banner "install check on the static release binary the VM phase built (scripts/check-install.sh)"
    SMPCTL_RELEASE_BUILD=.build scripts/check-install.sh
elif [ "${SMPCTL_CHECK_INSTALL:-0}" = 1 ]; then
    banner "install check: building the static release binary (SMPCTL_CHECK_INSTALL=1, scripts/check-install.sh)"
    scripts/check-install.sh
else
    echo "install check skipped: it checks the static release binary that the BLE VM phase builds (set SMPCTL_CHECK_INSTALL=1 to build it here, a few minutes; or run scripts/check-install.sh)"
fi
if [ "$vm_status" -ne 0 ]; then
    echo "BLE VM test FAILED ($vm_status)"
    exit "$vm_status"
fi
