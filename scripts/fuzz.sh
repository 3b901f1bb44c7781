#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (with AddressSanitizer) and runs each for SECONDS
# (default 30), seeded from Fuzz/Corpus/<target>/ with the dictionary Fuzz/smp.dict.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 20, scripts/fuzz.sh 600 cbor smp
#
# The seed corpus is copied to a scratch folder first, so the committed corpus stays as it is.
# Prints a banner per target and a table of executions and coverage (libFuzzer's cov: and ft:
# from its final stats), and exits non-zero when a target crashes (a trap, an ASan report, a
# violated invariant, a timeout or running out of memory), printing the path of the input that
# did it. See FUZZING.md.
#
# Environment:
#   FUZZ_JOBS=N          run N targets at a time (default 1; the machine has 2 cores)
#   FUZZ_WORK=DIR        scratch folder (default: a new one under $TMPDIR); kept when a target
#                        crashes or FUZZ_KEEP=1, removed otherwise
#   FUZZ_SKIP_BUILD=1    use the binaries already in Fuzz/.build-fuzz
#   FUZZ_SUMMARY=FILE    also write the summary table to FILE
#   FUZZ_BUILD_ONLY=1    build the targets and stop (what scripts/test.sh does when fuzzing is off)
set -euo pipefail
cd "$(dirname "$0")/.."
banner() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%H:%M:%S)"; }

seconds=${1:-30}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

# Target and -max_len: a little above the largest input the parser meets in practice, small
# enough to keep executions fast (images and archives are the fixtures' sizes).
all_targets="cbor:4096 smp:4096 serial:4096 reassembler:4096 image:16384 archive:16384 yaml:8192 devicetree:8192 kconfig:8192 simulator:8192 connection:1024 manifest:8192"
if [ $# -gt 0 ]; then
    selected=""
    for name in "$@"; do
        entry=$(printf '%s\n' $all_targets | grep "^$name:" || true)
        [ -n "$entry" ] || { echo "unknown fuzz target $name (known: $(printf '%s\n' $all_targets | cut -d: -f1 | tr '\n' ' '))" >&2; exit 2; }
        selected="$selected $entry"
    done
else
    selected=$all_targets
fi

build_flags=(-c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
    --package-path Fuzz --scratch-path Fuzz/.build-fuzz)
if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    banner "build fuzz targets"
    # The linker warns about ASan's local symbols by the hundred; keep only the rest.
    status=0
    swift build "${build_flags[@]}" 2>&1 | { grep -v "warning: Cannot export local symbol" || true; } || status=$?
    [ "$status" -eq 0 ] || { echo "fuzz build failed" >&2; exit 1; }
fi
bin=$(swift build "${build_flags[@]}" --show-bin-path)
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
    echo "fuzz targets built in $bin (FUZZ_BUILD_ONLY=1: none run)"
    exit 0
fi

work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/smpctl-fuzz.XXXXXX")}
mkdir -p "$work"
echo "scratch folder: $work"

run_target() {
    local name=$1 max_len=$2
    local corpus="$work/corpus/$name" artifacts="$work/artifacts/$name" log="$work/$name.log"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp Fuzz/Corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    local status=0
    # -detect_leaks=0: LeakSanitizer cannot see Swift's enum payload pointers (the case tag sits in
    # the pointer's spare bits), so it reports globals such as a static CBORValue as leaked.
    # (ASAN_OPTIONS for the check at exit, -detect_leaks for the one after each input.)
    # SWIFT_BACKTRACE: Swift's crash backtracer and ASan both want the crash; libFuzzer's report
    # (with ASan's stack) is the one that names the input.
    # quarantine_size_mb=64, malloc_context_size=8: with ASan's defaults (256 MB, 30 frames) its
    # own bookkeeping (freed blocks held back, every allocation's stack in a depot that is never
    # freed) grew by about 1.4 KB per input, and the cbor target reached -rss_limit_mb after 1.4
    # million inputs; with these it stays near 200 MB and runs faster (FUZZING.md). smpctl's code
    # holds nothing: without quarantine and stacks the same run stays at 48 MB.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=64:malloc_context_size=8} "$bin/fuzz-$name" -max_total_time="$seconds" -max_len="$max_len" -dict=Fuzz/smp.dict \
        -print_final_stats=1 -detect_leaks=0 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" \
        "$corpus" >"$log" 2>&1 || status=$?
    local execs cov ft
    local rate
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    local result=ok
    if [ "$status" -ne 0 ]; then
        result="CRASH"
        tail -40 "$log"
        for file in "$artifacts"/*; do [ -e "$file" ] && echo "crash input: $file"; done
        echo "log: $log"
    fi
    printf '%-12s %8s %12s %10s %8s %8s %8s  %s\n' "$name" "$seconds" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "${ft:-?}" "$(ls "$corpus" | wc -l)" "$result" \
        >"$work/$name.row"
    [ "$status" -eq 0 ]
}

jobs_max=${FUZZ_JOBS:-1}
failed=0
running=0
for entry in $selected; do
    name=${entry%%:*}
    banner "fuzz $name"
    if [ "$jobs_max" -le 1 ]; then
        run_target "$name" "${entry#*:}" || failed=1
        cat "$work/$name.row"
    else
        run_target "$name" "${entry#*:}" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs_max" ]; then
            wait -n || failed=1
            running=$((running - 1))
        fi
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

banner "fuzz summary"
{
    printf '%-12s %8s %12s %10s %8s %8s %8s  %s\n' target seconds executions exec/s cov ft corpus result
    total=0
    for entry in $selected; do
        name=${entry%%:*}
        cat "$work/$name.row"
        total=$((total + $(awk '{print $3}' "$work/$name.row" | tr -dc 0-9 | sed 's/^$/0/')))
    done
    echo "total executions: $total"
} | tee "${FUZZ_SUMMARY:-/dev/null}"

if [ "$failed" -ne 0 ]; then
    echo "fuzzing found a crash; inputs and logs are in $work" >&2
    exit 1
fi
[ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work"
