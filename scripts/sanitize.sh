#!/usr/bin/env bash
# Runs the Swift test suites under AddressSanitizer and/or ThreadSanitizer:
#
#   scripts/sanitize.sh [address|thread|all] [--ci]
#
# address: swift build --build-tests --sanitize=address --scratch-path .build-asan, then
#          swift test --skip-build with the same flags; thread: the same with .build-tsan.
# The CLI tests run the smpctl binary found next to the test bundle, so they run the sanitized
# build of smpctl from the same scratch path.
#
# --ci (what scripts/test.sh uses) runs the subset that fits CI's time budget; without it every
# suite runs (the full commands: scripts/sanitize.sh address, scripts/sanitize.sh thread). See
# FUZZING.md ("Sanitizers") for the timings this choice is based on.
# Extra arguments after the mode are passed to swift test (e.g. --filter SMPCtlCBORTests).
set -euo pipefail
cd "$(dirname "$0")/.."
banner() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%H:%M:%S)"; }

mode=${1:-all}
shift || true
case "$mode" in address | thread | all) ;; *) echo "usage: scripts/sanitize.sh [address|thread|all] [--ci] [swift test options]" >&2; exit 2 ;; esac
ci=0
if [ "${1:-}" = --ci ]; then
    ci=1
    shift
fi

# The CI subset (timings in FUZZING.md), what scripts/test.sh runs by default:
# - both sanitizers leave out the randomized single-threaded codec suites (200,000+ decoder
#   inputs, serial framing and image mutations), which took 2/3 of the ASan run and 71 % of the
#   TSan run and whose decoders the libFuzzer targets run under ASan anyway;
# - both leave out the suites that start the sanitized smpctl binary hundreds of times (the CLI
#   target, fleet end to end, the BLE pair and scan commands): each start of a sanitized binary
#   costs more than the test it serves, and the code those runs reach is in the other suites;
# - ASan also leaves out the knowledge base's message-format suites (MessageFormatTests,
#   ToolMessageTests: string matching in safe Swift, 35 s under ASan);
# - TSan runs the suites with threads: client and upload engine, simulator and transports, and
#   the D-Bus and BlueZ suites (their one report was TSan not seeing a continuation hand-over,
#   fixed in SMPCtlDBus: FUZZING.md, "ThreadSanitizer and continuations");
# - both run 6 seeded upload fault schedules (SMPCTL_PROPERTY_CASES) instead of 24: 85 s of
#   either run went to the 24, which the Swift tests phase runs unsanitized anyway.
# The full commands (no --ci) run every suite.
cli_suites=(--skip SMPCtlCLITests --skip FleetCLITests --skip BLEPairCommandTests --skip BLEPairTerminalTests --skip BLEScanCommandTests)
ci_address=(--skip DecoderFuzzTests --skip SerialFuzzTests --skip SerialFramingTests --skip MCUbootImageRobustnessTests
    --skip MessageFormatTests --skip ToolMessageTests "${cli_suites[@]}")
ci_thread=(--filter 'SMPCtlClientTests|SMPCtlSimulatorTests|SMPCtlDBusTests|SMPCtlBlueZTests' "${cli_suites[@]}")
if [ "$ci" = 1 ]; then export SMPCTL_PROPERTY_CASES=${SMPCTL_PROPERTY_CASES:-6}; fi

run() {
    local sanitizer=$1 scratch=$2
    shift 2
    local start
    start=$(date +%s)
    banner "build with tests (--sanitize=$sanitizer, $scratch)"
    swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
    local built
    built=$(date +%s)
    banner "Swift tests under --sanitize=$sanitizer"
    # --no-parallel: the suites' wall-clock guards (fallback "at once", busy budgets, BLE
    # discovery) assume the cooperative pool is not starved; a sanitized build run in parallel on
    # 2 cores starves it and those tests fail on time, not on a sanitizer report.
    # halt_on_error: the first report fails the run instead of scrolling by.
    # detect_leaks=0: every LeakSanitizer report of these suites is rooted in a global initializer
    # (swift_once) holding indirect enums such as CBORValue and DBusValue, whose payload pointers
    # carry the case in spare bits that LeakSanitizer does not recognise as pointers; XCTest's own
    # objects are reported too. See FUZZING.md.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1} \
        TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
        swift test --skip-build --no-parallel --sanitize="$sanitizer" --scratch-path "$scratch" "$@"
    local end
    end=$(date +%s)
    echo "--sanitize=$sanitizer: build $((built - start)) s, tests $((end - built)) s"
}

if [ "$mode" = address ] || [ "$mode" = all ]; then
    if [ "$ci" = 1 ]; then run address .build-asan "${ci_address[@]}" "$@"; else run address .build-asan "$@"; fi
fi
if [ "$mode" = thread ] || [ "$mode" = all ]; then
    if [ "$ci" = 1 ]; then run thread .build-tsan "${ci_thread[@]}" "$@"; else run thread .build-tsan "$@"; fi
fi
