#!/usr/bin/env python3
"""CPU time per MiB uploaded, for one or more smpctl binaries side by side.

A benchmark, not a test. For every binary and transport (UDP, serial over a PTY), uploads a
32 KiB and an 8 MiB signed image to a fresh `smpctl simulate`, several rounds interleaved between
the binaries, and reports the client process's CPU time (user + system, from GNU time) per MiB:
(CPU of the 8 MiB upload − CPU of the 32 KiB upload) ÷ the MiB between them, so that process
start-up and connection set-up cancel out. The simulator is always the first binary, so the
device side is the same for every client.

    python3 Benchmarks/cpu_per_mib.py --smpctl before=/tmp/smpctl-before --smpctl after=.build/release/smpctl
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the upload benchmark: images, simulator and measuring helpers)


def upload_cpu(client: str, simulator: str, transport: str, image: Path, log_dir: Path) -> float:
    with run.Simulator(simulator, transport, None, log_dir, f"cpu-{transport}") as sim:
        m = run.run_measured([client, "-c", sim.connection, "--json", "image", "upload", str(image)], 300)
    if m.status != 0:
        raise RuntimeError(f"{client} upload over {transport} failed ({m.status}): {m.stderr[-300:]}")
    return m.cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpctl", action="append", required=True, help="NAME=PATH, repeatable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", default="udp,pty")
    args = parser.parse_args()
    binaries = [tuple(spec.split("=", 1)) for spec in args.smpctl]
    simulator = binaries[0][1]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = run.make_images(tmp)
        small, large = images["32K"], images["8M"]
        mib = (large.stat().st_size - small.stat().st_size) / run.MiB
        results: dict[tuple[str, str], list[float]] = {}
        for transport in args.transports.split(","):
            for _ in range(args.rounds):
                for name, path in binaries:
                    large_cpu = upload_cpu(path, simulator, transport, large, tmp)
                    small_cpu = upload_cpu(path, simulator, transport, small, tmp)
                    results.setdefault((name, transport), []).append((large_cpu - small_cpu) / mib)
        print("| transport | binary | CPU ms per MiB (median) | rounds |")
        print("|---|---|---|---|")
        for (name, transport), values in results.items():
            print(f"| {transport} | {name} | {statistics.median(values) * 1000:.0f} | "
                  + ", ".join(f"{v * 1000:.0f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
