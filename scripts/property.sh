#!/usr/bin/env bash
# The long run of the upload property test: CASES seeded fault schedules (default 2000) against
# the simulator, in process and over UDP, on emulated links, with the time bounds checked.
# CI runs 24 of them through scripts/test.sh. Replay one failing seed with
# SMPCTL_PROPERTY_SEED=N scripts/property.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export SMPCTL_PROPERTY_CASES=${1:-${SMPCTL_PROPERTY_CASES:-2000}}
swift build --build-tests
SMPCTL_PROPERTY_STRICT_TIME=1 swift test --skip-build --filter UploadPropertyTests
