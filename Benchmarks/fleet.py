#!/usr/bin/env python3
"""The fleet benchmark: 200 simulated UDP devices updated with `fleet run --parallel 50`.

A benchmark, not a test. Measures, with one smpctl binary:
  - the whole `smpctl fleet run MANIFEST --parallel 50` process (wall time, CPU, peak RSS) over
    `smpctl simulate --udp 127.0.0.1:0 --devices 200` (ideal link), every device updated;
  - the baseline: 200 / 50 = 4 single-device `smpctl -c udp:... dfu IMAGE` runs one after the
    other, each against a fresh simulator, as the issue's target compares with;
  - peak RSS while 50 uploads are in flight (the fleet run's own figure: GNU time's maximum RSS).

    python3 Benchmarks/fleet.py --smpctl .build/release/smpctl [--devices 200 --parallel 50]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (images, the simulator wrapper, measuring helpers)

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpctl", default=str(REPO / ".build" / "release" / "smpctl"))
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--image", default=str(REPO / "Examples" / "images" / "blinky-1.1.0.signed.bin"))
    args = parser.parse_args()
    smpctl = str(Path(args.smpctl).resolve())
    image = str(Path(args.image).resolve())
    singles = max(1, args.devices // args.parallel)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The baseline: single dfu runs, one after the other, each on a fresh simulator.
        single_walls = []
        for index in range(singles):
            with run.Simulator(smpctl, "udp", None, tmp, f"single-{index}") as sim:
                m = run.run_measured([smpctl, "-c", sim.connection, "--json", "dfu", image], 300)
            if m.status != 0:
                print(f"single dfu {index} failed ({m.status}): {m.stderr[-400:]}")
                return 1
            single_walls.append(m.wall)
        baseline = sum(single_walls)

        manifest = tmp / "fleet.yaml"
        sim_log = open(tmp / "fleet-sim.log", "wb")
        sim = subprocess.Popen(
            [smpctl, "simulate", "--udp", "127.0.0.1:0", "--devices", str(args.devices), "--fleet-image", image,
             "--manifest", str(manifest), "--exit-after", "900"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sim_log, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    manifest.exists() and "# end of manifest" in manifest.read_text(errors="replace")):
                time.sleep(0.1)
            if not manifest.exists():
                print("the simulator wrote no manifest")
                return 1
            fleet = run.run_measured(
                [smpctl, "--json", "fleet", "run", str(manifest), "--parallel", str(args.parallel),
                 "--journal", str(tmp / "fleet.journal")], 900)
        finally:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait(timeout=10)
            sim_log.close()
        try:
            report = json.loads(fleet.stdout)
        except json.JSONDecodeError:
            print(f"fleet run printed no report ({fleet.status}): {fleet.stderr[-400:]}")
            return 1
        states: dict[str, int] = {}
        for device in report.get("devices", []):
            states[device.get("state", "?")] = states.get(device.get("state", "?"), 0) + 1
        ratio = fleet.wall / baseline if baseline else float("nan")
        print(f"| devices | parallel | fleet wall s | fleet CPU s | fleet peak RSS MiB | {singles} single dfu runs, wall s "
              "| fleet ÷ singles | states |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {args.devices} | {args.parallel} | {fleet.wall:.1f} | {fleet.cpu:.1f} | {fleet.maxrss_kib / 1024:.1f} "
              f"| {baseline:.1f} ({', '.join(f'{w:.2f}' for w in single_walls)}) | {ratio:.2f} "
              f"| {', '.join(f'{k} {v}' for k, v in sorted(states.items()))} |")
        print(f"fleet exit status {fleet.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
