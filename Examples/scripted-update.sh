#!/usr/bin/env bash
# A fleet update from a script, from any folder: serves 8 simulated devices over UDP (one
# unreachable, one that rejects the image, one already up to date), plans, runs with a canary,
# and prints the report. Usage: Examples/scripted-update.sh [SMPCTL]
# Exit status: that of `smpctl fleet run` (0 all done, 6 some failed, 7 halted).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
smpctl=${1:-smpctl}
work=$(mktemp -d)
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$work"' EXIT
"$smpctl" simulate --udp 127.0.0.1:0 --devices 8 --fleet-image "$here/images/blinky-1.1.0.signed.bin" \
    --unreachable-every 8 --reject-every 7 --current-every 5 --manifest "$work/fleet.yaml" >/dev/null 2>&1 &
simulator=$!
for _ in $(seq 100); do [ -s "$work/fleet.yaml" ] && break; sleep 0.1; done
"$smpctl" fleet plan "$work/fleet.yaml"
status=0
"$smpctl" fleet run "$work/fleet.yaml" --canary 1 --journal "$work/fleet.journal" || status=$?
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [print(d["name"], d["state"], d.get("reason") or "") for d in r["devices"]]' \
    "$work/fleet.report.json"
exit $status
