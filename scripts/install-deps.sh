#!/usr/bin/env bash
# Installs what smpctl's build, tests and CI need on Debian. Safe to run again.
set -euo pipefail
need_apt=()
# mandoc: the man-page test lints every page with `mandoc -T lint`.
for package in libdbus-1-dev zlib1g-dev dbus python3 python3-pip python3-venv mandoc; do
    dpkg -s "$package" >/dev/null 2>&1 || need_apt+=("$package")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# The interoperability test uses an independent client from PyPI.
if ! python3 -c "import smpclient" 2>/dev/null; then
    python3 -m pip install --quiet "smpclient==7.3.0" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "smpclient==7.3.0"
fi
command -v swift >/dev/null || { echo "smpctl needs a Swift 6.1+ toolchain on PATH (swift.org)"; exit 1; }
