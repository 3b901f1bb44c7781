#!/usr/bin/env bash
# Runs every test: the Swift suites (codec, transports, client, simulator, CLI, man pages)
# and the interoperability test against PyPI's smpclient.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build
python3 Tests/Interop/smpclient_interop.py .build/debug/smpctl
