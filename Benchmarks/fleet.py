#!/usr/bin/env python3
"""The fleet benchmark: 200 simulated UDP devices updated with `fleet run --parallel 50`.

A benchmark, not a test. Measures, with one smpctl binary:
  - the whole `smpctl fleet run MANIFEST --parallel 50` process (wall time, CPU, peak RSS) over
    `smpctl simulate --udp 127.0.0.1:0 --devices 200` (ideal link), every device updated;
  - the baseline: 200 / 50 = 4 single-device `smpctl -c udp:... dfu IMAGE` runs one after the
    other, each against a fresh simulator, as the issue's target compares with;
  - peak RSS while 50 uploads are in flight (the fleet run's own figure: GNU time's maximum RSS).

    python3 Benchmarks/fleet.py --smpctl .build/release/smpctl [--devices 200 --parallel 50] [--runs 3] [--no-singles]

Each fleet run also reports the CPU seconds the simulator process spent while the fleet ran (from
/proc/PID/stat), since the two share the machine's cores; and the load average before and after.

With --link (an emulated BLE link, as `simulate --link`), it measures instead a fleet of
--adapters x --connections devices, every one behind that link and all updated at once, and
compares the fleet's upload throughput with the link model: each device's link capacity
(run.Link.upload_capacity, the same formula as LinkModel.uploadCapacity) times the number of
devices, and whether one adapter's radio could hold that many connections' events in one
connection interval (the simulated devices have a link each; they do not share an adapter):

    python3 Benchmarks/fleet.py --link ble:mtu=247,interval=15ms,ppe=4,phy=2m,dle=251 --adapters 2 --connections 4
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
    parser.add_argument("--link", help="an emulated BLE link for every device (the link-model benchmark)")
    parser.add_argument("--adapters", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4, help="connections per adapter, with --link")
    parser.add_argument("--runs", type=int, default=1, help="fleet runs (each with its own simulator) after the singles")
    parser.add_argument("--no-singles", action="store_true", help="only the fleet runs (no baseline, no ratio)")
    args = parser.parse_args()
    if args.link:
        return emulated_ble(args)
    smpctl = str(Path(args.smpctl).resolve())
    image = str(Path(args.image).resolve())
    singles = max(1, args.devices // args.parallel)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The baseline: single dfu runs, one after the other, each on a fresh simulator.
        single_walls = []
        for index in range(0 if args.no_singles else singles):
            with run.Simulator(smpctl, "udp", None, tmp, f"single-{index}") as sim:
                m = run.run_measured([smpctl, "-c", sim.connection, "--json", "dfu", image], 300)
            if m.status != 0:
                print(f"single dfu {index} failed ({m.status}): {m.stderr[-400:]}")
                return 1
            single_walls.append(m.wall)
        baseline = sum(single_walls)

        print(f"load average before the fleet runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"| devices | parallel | fleet wall s | fleet CPU s (user+sys) | simulator CPU s during the run | both CPU s "
              f"| fleet peak RSS MiB | {singles} single dfu runs, wall s | fleet ÷ singles | states |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for number in range(max(1, args.runs)):
            run_dir = tmp / f"run-{number}"
            run_dir.mkdir()
            fleet, sim_cpu = run_fleet(smpctl, run_dir, image, args.devices, args.parallel, [])
            if fleet is None:
                return 1
            try:
                report = json.loads(fleet.stdout)
            except json.JSONDecodeError:
                print(f"fleet run printed no report ({fleet.status}): {fleet.stderr[-400:]}")
                return 1
            states: dict[str, int] = {}
            for device in report.get("devices", []):
                states[device.get("state", "?")] = states.get(device.get("state", "?"), 0) + 1
            ratio = f"{fleet.wall / baseline:.2f}" if baseline else "—"
            singles_text = f"{baseline:.2f} ({', '.join(f'{w:.2f}' for w in single_walls)})" if single_walls else "—"
            print(f"| {args.devices} | {args.parallel} | {fleet.wall:.2f} | {fleet.cpu:.2f} | {sim_cpu:.2f} | {fleet.cpu + sim_cpu:.2f} "
                  f"| {fleet.maxrss_kib / 1024:.1f} | {singles_text} | {ratio} "
                  f"| {', '.join(f'{k} {v}' for k, v in sorted(states.items()))} |")
            if fleet.status != 0:
                print(f"fleet exit status {fleet.status}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def process_cpu(pid: int) -> float:
    """User + system seconds a live process has used (/proc/PID/stat), 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_fleet(smpctl: str, tmp: Path, image: str, devices: int, parallel: int,
              simulate_extra: list[str]) -> "tuple[run.Measured | None, float]":
    """Serves `devices` simulated UDP devices (`simulate --devices`, plus `simulate_extra`), runs
    `fleet run --parallel` over the manifest the simulator prints, and stops the simulator.
    Returns the fleet run's figures (None when the simulator wrote no manifest) and the CPU
    seconds the simulator spent while the fleet ran."""
    manifest = tmp / "fleet.yaml"
    with open(tmp / "fleet-sim.log", "wb") as sim_log:
        sim = subprocess.Popen(
            [smpctl, "simulate", "--udp", "127.0.0.1:0", "--devices", str(devices), "--fleet-image", image,
             *simulate_extra, "--manifest", str(manifest), "--exit-after", "900"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sim_log, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    manifest.exists() and "# end of manifest" in manifest.read_text(errors="replace")):
                time.sleep(0.1)
            if not manifest.exists():
                print("the simulator wrote no manifest")
                return None, 0.0
            before = process_cpu(sim.pid)
            measured = run.run_measured(
                [smpctl, "--json", "fleet", "run", str(manifest), "--parallel", str(parallel),
                 "--journal", str(tmp / "fleet.journal")], 900)
            return measured, process_cpu(sim.pid) - before
        finally:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait(timeout=10)


def emulated_ble(args: argparse.Namespace) -> int:
    """--link: adapters x connections devices behind emulated BLE links, all at once."""
    import re

    smpctl = str(Path(args.smpctl).resolve())
    image = str(Path(args.image).resolve())
    link = run.Link.parse(args.link)
    if link.kind != "ble":
        print("--link must be an emulated BLE link (ble:...)")
        return 2
    count = args.adapters * args.connections
    size = Path(image).stat().st_size
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fleet, _ = run_fleet(smpctl, tmp, image, count, count, ["--slow-every", "1", "--slow-link", args.link])
        if fleet is None:
            return 1
        uploads, requests, retries = [], [], 0
        for log in sorted(tmp.glob("*.logs/*.log")):
            text = log.read_text(errors="replace")
            found = re.search(r"uploaded in ([0-9.]+) s", text)
            if found:
                uploads.append(float(found.group(1)))
            found = re.search(r"requests of up to ([0-9]+) bytes", text)
            if found:
                requests.append(int(found.group(1)))
            retries += len(re.findall(r"retry \d+/", text))
    if fleet.status != 0 or len(uploads) != count:
        print(f"fleet run exited with {fleet.status}, {len(uploads)} of {count} uploads logged: {fleet.stderr[-400:]}")
        return 1
    request = min(requests) if requests else link.request_size
    capacity = link.upload_capacity(size, request) or 0.0
    # One adapter: each connection's event carries up to packets_per_interval() packets; all
    # --connections events must fit in one interval for every link to keep its own capacity.
    rate = {"1m": 1e6, "2m": 2e6, "coded": 125e3}[link.phy]
    packet_time = (link.dle + 14) * 8 / rate + 150e-6 + 10 * 8 / rate + 150e-6
    airtime = args.connections * link.packets_per_interval() * packet_time / link.interval
    per_adapter_model = capacity * args.connections / max(1.0, airtime)
    measured = count * size / max(uploads)
    print(f"| link | adapters x connections | file bytes | request bytes | model capacity per link B/s "
          f"| model, links apart B/s | measured ÷ that | radio time per interval, one adapter | model, adapters' radio shared B/s "
          f"| measured fleet upload B/s (all bytes / longest upload) | uploads s (min–max) | retries | fleet wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    model = per_adapter_model * args.adapters
    apart = capacity * count
    print(f"| `{args.link}` | {args.adapters} x {args.connections} | {size} | {request} | {capacity:,.0f} | {apart:,.0f} "
          f"| {measured / apart:.2f} | {airtime * 100:.0f} % | {model:,.0f} | {measured:,.0f} "
          f"| {min(uploads):.2f}–{max(uploads):.2f} | {retries} | {fleet.wall:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
