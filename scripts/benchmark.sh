#!/usr/bin/env bash
# Upload benchmark: builds smpctl in release, uploads signed images with smpctl, smpclient and
# mcumgr-toolkit to fresh simulators on ideal and emulated links, and writes BENCHMARKS.md.
# A benchmark, not a test: not part of scripts/test.sh or CI. See Benchmarks/README.md.
# Needs Python 3.11 with smpclient, mcumgr-toolkit and imgtool (pip install smpclient==7.3.0
# mcumgr-toolkit==0.20.0 imgtool). Extra arguments go to Benchmarks/run.py (e.g. --only BLE).
set -euo pipefail
cd "$(dirname "$0")/.."
SMPCTL_BENCHMARK_WRAPPER=1 exec python3 Benchmarks/run.py "$@"
