#!/usr/bin/env bash
# Installs what is needed, builds smpctl and runs a full firmware update against the embedded simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --product smpctl
.build/debug/smpctl -c sim dfu Examples/images/blinky-1.1.0.signed.bin
