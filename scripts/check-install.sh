#!/usr/bin/env bash
# Checks the install path (issue #12): installs into a temporary prefix, then checks that
#  - ldd lists no Swift toolchain library for the installed binary;
#  - the installed binary runs `--help`, `explain 5` and `-c sim echo` from another folder, with
#    PATH holding no swift and the build's resource bundle moved aside (so the knowledge base is
#    not found through the build tree, where SwiftPM's Bundle.module would look);
#  - the man pages and the bash, zsh and fish completion scripts are in place.
# It builds the release binary (scripts/release.sh) unless SMPCTL_SKIP_BUILD=1 and one exists.
# SMPCTL_RELEASE_BUILD names the scratch folder of that build (default .build-release);
# scripts/test.sh sets it to .build after the BLE VM phase, whose scripts/ble-vm/ci.sh builds the
# same static binary there, so CI builds it once.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
scratch="${SMPCTL_RELEASE_BUILD:-.build-release}"
prefix="$(mktemp -d)"
elsewhere="$(mktemp -d)"
bundle=""
restore() {
    if [ -n "$bundle" ] && [ -e "$bundle.hidden-by-check-install" ]; then mv "$bundle.hidden-by-check-install" "$bundle"; fi
    rm -rf "$prefix" "$elsewhere"
}
trap restore EXIT
fail() { echo "check-install: FAIL: $*" >&2; exit 1; }

start=$(date +%s)
scripts/install.sh "$prefix"
installed="$prefix/bin/smpctl"
[ -x "$installed" ] || fail "no $installed"

# No toolchain library: the Swift runtime, Foundation, Dispatch, ICU data of the toolchain.
toolchain_lib=""
if command -v swift >/dev/null; then
    toolchain_lib="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")/lib"
fi
libraries="$(ldd "$installed" || true)"
echo "$libraries"
if echo "$libraries" | grep -E 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime|libXCTest|libTesting' ; then
    fail "the installed binary links a Swift toolchain library (see above)"
fi
if [ -n "$toolchain_lib" ] && echo "$libraries" | grep -F "$toolchain_lib/"; then
    fail "the installed binary loads a library from the toolchain at $toolchain_lib"
fi
echo "$libraries" | grep -q "not found" && fail "a library is missing"

for page in man/*.1; do
    [ -f "$prefix/share/man/man1/$(basename "$page")" ] || fail "man page $(basename "$page") not installed"
done
grep -q "smpctl" "$prefix/share/bash-completion/completions/smpctl" || fail "no bash completion"
grep -q "#compdef smpctl" "$prefix/share/zsh/site-functions/_smpctl" || fail "no zsh completion"
grep -q "complete -c 'smpctl'" "$prefix/share/fish/vendor_completions.d/smpctl.fish" || fail "no fish completion"

# Run it from elsewhere, with a PATH that has no swift, and the build's resources out of reach.
bundle="$(swift build -c release --product smpctl --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)/smpctl_SMPCtlDiagnosis.resources"
[ -d "$bundle" ] && mv "$bundle" "$bundle.hidden-by-check-install"
clean_path="/usr/bin:/bin"
env -i HOME="$elsewhere" PATH="$clean_path" sh -c 'command -v swift' >/dev/null 2>&1 && fail "swift is on $clean_path; cannot check without a toolchain"
(cd "$elsewhere" && env -i HOME="$elsewhere" PATH="$clean_path" "$installed" --help > help.txt) || fail "smpctl --help failed"
grep -q "USAGE: smpctl" "$elsewhere/help.txt" || fail "smpctl --help printed no usage"
(cd "$elsewhere" && env -i HOME="$elsewhere" PATH="$clean_path" "$installed" explain 5 > explain.txt) || fail "smpctl explain 5 failed"
grep -q "MGMT_ERR_ENOENT" "$elsewhere/explain.txt" || { cat "$elsewhere/explain.txt"; fail "explain 5 did not explain rc 5"; }
(cd "$elsewhere" && env -i HOME="$elsewhere" PATH="$clean_path" "$installed" -c sim echo installed > echo.txt) || fail "smpctl -c sim echo failed"
grep -q "installed" "$elsewhere/echo.txt" || fail "echo against the simulator printed nothing"
echo "check-install: OK ($(stat -c %s "$installed") bytes, $(( $(date +%s) - start )) s)"
