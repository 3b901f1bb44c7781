#!/usr/bin/env bash
# Builds the release smpctl with the Swift runtime and Foundation linked in (--static-swift-stdlib),
# so it runs where no Swift toolchain is installed, and prints its path, size and SHA-256.
# The build goes to $SMPCTL_RELEASE_BUILD (default .build-release): --static-swift-stdlib compiles
# every module again anyway, and apart from .build it never holds the debug build's lock, nor
# fights over .build/release with the non-static release build of Benchmarks/run.py (other flags:
# each would rebuild everything). CI shares one build instead: scripts/ble-vm/ci.sh runs the same
# command in .build (swift build -c release --static-swift-stdlib --product smpctl), and
# scripts/test.sh then runs this with SMPCTL_RELEASE_BUILD=.build, which finds nothing to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${SMPCTL_RELEASE_BUILD:-.build-release}"
build=(swift build -c release --product smpctl --static-swift-stdlib --scratch-path "$scratch")
start=$(date +%s)
log=$(mktemp)
if ! "${build[@]}" >"$log" 2>&1; then
    grep -E "error" "$log" | head -40 >&2
    rm -f "$log"
    echo "release.sh: the release build failed: ${build[*]}" >&2
    exit 1
fi
rm -f "$log"
bin_dir=$("${build[@]}" --show-bin-path)
built="$bin_dir/smpctl"
[ -x "$built" ] || { echo "release.sh: no binary at $built" >&2; exit 1; }
# The artifact: the binary without its debug symbols (it keeps what Swift needs at run time).
mkdir -p "$scratch/artifact"
binary="$scratch/artifact/smpctl"
cp "$built" "$binary"
if command -v strip >/dev/null; then strip "$binary"; fi
size=$(stat -c %s "$binary")
sha=$(sha256sum "$binary" | cut -d' ' -f1)
echo "binary: $binary (from $built, $(stat -c %s "$built") bytes before strip)"
echo "size: $size bytes ($(( (size + 524288) / 1048576 )) MiB)"
echo "sha256: $sha"
echo "knowledge: Sources/SMPCtlDiagnosis/Knowledge/knowledge.json (installed beside it as share/smpctl/knowledge.json)"
echo "built in $(( $(date +%s) - start )) s"
