#!/usr/bin/env bash
# Updates every device listed in a manifest with `smpctl --json dfu` and prints a report.
#
# Manifest lines: CONNECTION IMAGE   (blank lines and # comments are skipped), for example
#   udp:192.0.2.10            build/zephyr/zephyr.signed.bin
#   serial:/dev/ttyACM0       build/zephyr/zephyr.signed.bin
#
# Usage: Examples/scripted-update.sh MANIFEST [SMPCTL]
# Exit status: 0 when every device was updated, otherwise the first failing smpctl status.
set -uo pipefail
manifest=${1:?usage: scripted-update.sh MANIFEST [SMPCTL]}
smpctl=${2:-smpctl}
status=0
printf '%-32s %-8s %-8s %s\n' DEVICE RESULT MS DETAIL
while read -r connection image _; do
    [[ -z "$connection" || "$connection" == \#* ]] && continue
    start=$(date +%s%N)
    document=$("$smpctl" -c "$connection" --json dfu "$image" 2>/dev/null)
    code=$?
    milliseconds=$(( ($(date +%s%N) - start) / 1000000 ))
    detail=$(printf '%s' "$document" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if d.get("ok"):
    print("version %s confirmed=%s%s" % (d["version"], d["confirmed"], " (upload skipped)" if d["upload_skipped"] else ""))
else:
    e = d.get("device_error") or {}
    print("%s %s" % (e.get("name") or d.get("error", "?"), d.get("message", "")))
' 2>/dev/null || echo "no JSON output")
    if [ $code -eq 0 ]; then result=ok; else result="exit $code"; [ $status -eq 0 ] && status=$code; fi
    printf '%-32s %-8s %-8s %s\n' "$connection" "$result" "$milliseconds" "$detail"
done < "$manifest"
exit $status
