#!/usr/bin/env bash
# Runs every test: the Swift suites (codec, transports, client, simulator, D-Bus and fake-BlueZ,
# diagnosis, CLI, man pages), the interoperability test against PyPI's smpclient, and the BLE dfu
# against a real bluetoothd in a small VM (needs root for debootstrap and qemu; set
# SMPCTL_SKIP_BLE_VM=1 to leave it out), then the install check on the static binary the VM phase
# built (scripts/check-install.sh; without the VM phase only with SMPCTL_CHECK_INSTALL=1).
# After the Swift tests come the hardening phases: the CI subset of the suites under
# AddressSanitizer and then under ThreadSanitizer (scripts/sanitize.sh address --ci, thread --ci;
# SMPCTL_SKIP_SANITIZERS=1 leaves them out), and a fuzz smoke run, every libFuzzer target for a
# few seconds (scripts/fuzz.sh 3; SMPCTL_SKIP_FUZZ=1 only builds the targets, so that none can
# stop compiling unnoticed; SMPCTL_HARDENING=1 runs each for 20 s instead). The long fuzz runs
# stay by hand (scripts/fuzz.sh 840). Timings and the choice of subsets: FUZZING.md.
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
# The hardening phases. Each sanitizer has its own scratch path (.build-asan, .build-tsan), so the
# first run builds everything twice more (about 4 minutes each on an idle 2-core machine).
if [ "${SMPCTL_SKIP_SANITIZERS:-0}" != 1 ]; then
    banner "phase: Swift tests under AddressSanitizer, CI subset (scripts/sanitize.sh address --ci)"
    scripts/sanitize.sh address --ci
    banner "phase: Swift tests under ThreadSanitizer, CI subset (scripts/sanitize.sh thread --ci)"
    scripts/sanitize.sh thread --ci
else
    echo "sanitizer phases skipped (SMPCTL_SKIP_SANITIZERS=1; scripts/sanitize.sh all --ci runs them)"
fi
if [ "${SMPCTL_SKIP_FUZZ:-0}" = 1 ]; then
    # Built even when not run, so that a target cannot stop compiling unnoticed (fuzz-yaml did).
    banner "phase: build the fuzz targets, none run (SMPCTL_SKIP_FUZZ=1; FUZZ_BUILD_ONLY=1 scripts/fuzz.sh)"
    FUZZ_BUILD_ONLY=1 scripts/fuzz.sh
elif [ "${SMPCTL_HARDENING:-0}" = 1 ]; then
    banner "phase: fuzz every parser for 20 s (SMPCTL_HARDENING=1; scripts/fuzz.sh 20)"
    scripts/fuzz.sh 20
else
    banner "phase: fuzz smoke, every parser for 3 s (scripts/fuzz.sh 3; SMPCTL_HARDENING=1 runs 20 s)"
    scripts/fuzz.sh 3
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
