#!/usr/bin/env bash
# Installs smpctl: a release binary with the Swift runtime linked in, its knowledge base, its man
# pages, and bash, zsh and fish completions.
#
#   scripts/install.sh [PREFIX]     PREFIX defaults to /usr/local
#
# Files: PREFIX/bin/smpctl, PREFIX/share/smpctl/knowledge.json, PREFIX/share/man/man1/smpctl*.1,
# PREFIX/share/bash-completion/completions/smpctl, PREFIX/share/zsh/site-functions/_smpctl,
# PREFIX/share/fish/vendor_completions.d/smpctl.fish. DESTDIR is prepended when set (packaging).
# SMPCTL_SKIP_BUILD=1 installs the binary release.sh built last without building again.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-/usr/local}"
case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac
root="${DESTDIR:-}$prefix"
scratch="${SMPCTL_RELEASE_BUILD:-.build-release}"
if [ "${SMPCTL_SKIP_BUILD:-0}" != 1 ]; then
    scripts/release.sh
fi
binary="$scratch/artifact/smpctl"
[ -x "$binary" ] || { echo "install.sh: no release binary at $binary (run scripts/release.sh)" >&2; exit 1; }

# The build ran as you; only writing to a prefix you cannot write (such as /usr/local) uses sudo.
probe="$root"
while [ ! -e "$probe" ]; do probe="$(dirname "$probe")"; done
SUDO=""
if [ ! -w "$probe" ] && [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install.sh: $probe is not writable and there is no sudo; give a PREFIX such as ~/.local" >&2; exit 1; }
    echo "install.sh: $probe is not writable by you; installing with sudo"
    SUDO="sudo"
fi
completions="$(mktemp -d)"
trap 'rm -rf "$completions"' EXIT
"$binary" --generate-completion-script bash > "$completions/smpctl"
"$binary" --generate-completion-script zsh > "$completions/_smpctl"
"$binary" --generate-completion-script fish > "$completions/smpctl.fish"

$SUDO install -d "$root/bin" "$root/share/smpctl" "$root/share/man/man1" \
    "$root/share/bash-completion/completions" "$root/share/zsh/site-functions" \
    "$root/share/fish/vendor_completions.d"
$SUDO install -m 0755 "$binary" "$root/bin/smpctl"
$SUDO install -m 0644 Sources/SMPCtlDiagnosis/Knowledge/knowledge.json "$root/share/smpctl/knowledge.json"
$SUDO install -m 0644 man/*.1 "$root/share/man/man1/"
$SUDO install -m 0644 "$completions/smpctl" "$root/share/bash-completion/completions/smpctl"
$SUDO install -m 0644 "$completions/_smpctl" "$root/share/zsh/site-functions/_smpctl"
$SUDO install -m 0644 "$completions/smpctl.fish" "$root/share/fish/vendor_completions.d/smpctl.fish"

echo "installed $root/bin/smpctl, $(ls man/*.1 | wc -l) man pages and bash, zsh and fish completions under $root"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "add $prefix/bin to PATH, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
