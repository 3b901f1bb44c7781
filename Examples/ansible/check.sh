#!/usr/bin/env bash
# Runs the Ansible example against this machine, as scripts/test.sh does:
#
#   Examples/ansible/check.sh [SMPCTL]
#
# ansible-core from PyPI in a virtual environment (.build/ansible-venv, made once), a fleet of
# six simulated devices (`smpctl simulate --devices 6`: gateways gw-a and gw-b, three each), the
# playbook over the two-gateway inventory (both are this machine), then `smpctl fleet report`
# over the fetched reports. Fails unless every device is done, each gateway updated only its own
# devices, and the merged report has all six.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SMPCTL=$(realpath "${1:-$REPO/.build/debug/smpctl}")
export LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1
venv=$REPO/.build/ansible-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
    echo "ansible: installing ansible-core into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'ansible-core>=2.16,<2.20'
fi
# The gateways here are this machine: their modules run with the environment's own Python.
export ANSIBLE_PYTHON_INTERPRETER=$venv/bin/python
work=$(mktemp -d "${TMPDIR:-/tmp}/smpctl-ansible.XXXXXX")
sim=
cleanup() { [ -z "$sim" ] || kill "$sim" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cp "$REPO/Examples/images/blinky-1.1.0.signed.bin" "$work/app.signed.bin"
"$SMPCTL" simulate --udp 127.0.0.1:0 --devices 6 --fleet-image "$work/app.signed.bin" --exit-after 300 \
    >"$work/simulate.out" 2>"$work/simulate.err" &
sim=$!
for _ in $(seq 1 300); do grep -q '^# end of manifest' "$work/simulate.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^# end of manifest' "$work/simulate.out" || { cat "$work/simulate.err"; echo "ansible: the simulator printed no manifest"; exit 1; }
# The manifest names its image by file name: the playbook copies the image next to it.
sed 's|^\( *file: \).*|\1"app.signed.bin"|' "$work/simulate.out" >"$work/fleet.yaml"
"$venv/bin/ansible-playbook" -i "$REPO/Examples/ansible/inventory.ini" "$REPO/Examples/ansible/fleet-update.yml" \
    -e "smpctl_binary=$SMPCTL" -e "manifest=$work/fleet.yaml" -e "image=$work/app.signed.bin" \
    -e "work_root=$work/gateways" -e "reports_dir=$work/reports"
"$SMPCTL" --json fleet report "$work"/reports/*/fleet.report.json >"$work/merged.json"
python3 - "$work" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
for gateway in ("gw-a", "gw-b"):
    report = json.loads((work / "reports" / gateway / "fleet.report.json").read_text())
    gateways = {d["labels"]["gateway"] for d in report["devices"]}
    assert gateways == {gateway}, f"{gateway} updated devices of {gateways}"
    assert len(report["devices"]) == 3, f"{gateway}: {len(report['devices'])} devices"
merged = json.loads((work / "merged.json").read_text())
states = sorted(d["state"] for d in merged["devices"])
assert states == ["done"] * 6, f"merged report states: {states}"
print(f"ansible: 2 gateways, {len(states)} devices done, merged report agrees")
PY
