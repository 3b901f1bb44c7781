#!/usr/bin/env bash
# Lists the warning and error messages in checkouts of MCUboot, Zephyr and the nRF Connect SDK and
# reports the ones that Tests/Fixtures/message-formats lacks. For refreshing the knowledge base by
# hand; CI does not run it.
#
# usage: scripts/refresh-knowledge.sh [--mcuboot DIR] [--zephyr DIR] [--nrf DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
extract="$here/scripts/extract-messages.py"
fixtures="$here/Tests/Fixtures/message-formats"
mcuboot="" zephyr="" nrf=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mcuboot) mcuboot="$2"; shift 2 ;;
    --zephyr) zephyr="$2"; shift 2 ;;
    --nrf) nrf="$2"; shift 2 ;;
    *) echo "usage: $0 [--mcuboot DIR] [--zephyr DIR] [--nrf DIR]" >&2; exit 2 ;;
  esac
done
status=0
report() { # name fixture root paths...
  local name="$1" fixture="$2" root="$3"; shift 3
  local found missing
  found="$(python3 "$extract" "$root" "$@" | cut -f1 | sort -u)"
  missing="$(comm -23 <(printf '%s\n' "$found") <(grep -v '^#' "$fixture" 2>/dev/null | cut -f1 | sort -u))"
  echo "$name: $(printf '%s\n' "$found" | grep -c . || true) formats found, $(printf '%s\n' "$missing" | grep -c . || true) not in $(basename "$fixture")"
  if [ -n "$missing" ]; then printf '  %s\n' "$missing"; status=1; fi
}
[ -n "$mcuboot" ] && report MCUboot "$fixtures/mcuboot.txt" "$mcuboot" boot/bootutil boot/zephyr boot/boot_serial
[ -n "$zephyr" ] && report "Zephyr mcumgr" "$fixtures/zephyr-mcumgr.txt" "$zephyr" subsys/mgmt/mcumgr
[ -n "$nrf" ] && report "NCS Partition Manager / DFU" "$fixtures/sdk-nrf-pm.txt" "$nrf" \
  scripts/partition_manager.py scripts/partition_manager_output.py scripts/partition_manager_report.py \
  scripts/bootloader/generate_zip.py cmake/partition_manager.cmake cmake/sysbuild/partition_manager.cmake \
  cmake/dfu_multi_image.cmake cmake/fw_zip.cmake cmake/sysbuild/zip.cmake subsys/partition_manager/CMakeLists.txt
exit $status
