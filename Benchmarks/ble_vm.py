#!/usr/bin/env python3
"""BLE benchmark in the BlueZ VM: smpctl against smpclient with bleak, EATT off and on.

    python3 Benchmarks/ble_vm.py [--runs 3] [--image-kib 128] [--mtu 512] [--no-build]

Both clients go through one bluetoothd 5.66 (btvirt controllers, scripts/ble-vm) to the same
`smpctl simulate --ble` peripheral on hci0, from hci1. For each bluetoothd setting (EATT off:
`[GATT] Channels = 1`; EATT on: `Channels = 3`, bluetoothd's default) the VM boots once and
scripts/ble-vm/bench.sh runs, RUNS times in turn: `smpctl image upload`, `smpctl echo`, the
smpclient upload and the smpclient echo (Benchmarks/ble_smpclient.py). It reports medians of
the whole process, the upload itself and the echo round trip, and the ratios.

Needs: the VM (scripts/ble-vm/build-vm.sh, with python3), imgtool and pip (PyPI) on the host.
smpclient 7.3 and bleak 3.1 are installed into .build/ble-bench/pylib, which the VM reads over 9p.

ExchangeMTU defaults to 512 here: a BlueZ *peripheral* drops write commands longer than 510 bytes
(shared/reference/bluez-vm-notes.md), and bleak writes MTU - 3 bytes; at MTU 512 both clients'
writes (509 bytes at most) reach the peripheral, as they would reach a Zephyr device at 517.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".build" / "ble-bench"
PEERS = ["smpclient==7.3.*", "bleak==3.1.*"]


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def ensure_pylib() -> None:
    lib = WORK / "pylib"
    if (lib / "smpclient").is_dir() and (lib / "bleak").is_dir():
        return
    sh([sys.executable, "-m", "pip", "install", "-q", "--target", str(lib), *PEERS])


def make_image(kib: int) -> Path:
    image = WORK / f"bench-{kib}k.signed.bin"
    if image.exists():
        return image
    if subprocess.run([sys.executable, "-c", "import imgtool"], capture_output=True).returncode != 0:
        sh([sys.executable, "-m", "pip", "install", "-q", "imgtool"])
    key = WORK / "throwaway-key.pem"
    if not key.exists():
        sh([sys.executable, "-m", "imgtool.main", "keygen", "-k", str(key), "-t", "ecdsa-p256"], capture_output=True)
    raw = WORK / f"payload-{kib}k.bin"
    raw.write_bytes(os.urandom(kib * 1024 - 0x200 - 150))
    sh([sys.executable, "-m", "imgtool.main", "sign", "--key", str(key), "--header-size", "0x200", "--align", "4",
        "--version", "1.2.0", "--slot-size", str(1024 * 1024), "--pad-header", str(raw), str(image)], capture_output=True)
    return image


def run_vm(label: str, channels: int, args, image: Path) -> list[dict]:
    config = WORK / "config"
    config.write_text(
        f"LABEL={label}\nRUNS={args.runs}\nIMAGE=/mnt/host/{image.relative_to(REPO)}\n"
        f"BUF_SIZE={args.buf_size}\nPEER_TIMEOUT={args.peer_timeout}\nCLIENTS={args.clients}\n"
        f"SMPCTL_QUERY='{args.smpctl_query}'\n")
    env = dict(os.environ)
    env["VM_APPEND"] = f"smpctl_eatt={channels} smpctl_mtu={args.mtu}"
    env["VM_LOG"] = str(WORK / f"console-{label}.log")
    env.setdefault("VM_TIMEOUT", "1500")
    print(f"=== BLE benchmark: {label} (Channels = {channels}, ExchangeMTU = {args.mtu}) ===", flush=True)
    started = time.monotonic()
    result = subprocess.run([str(REPO / "scripts/ble-vm/run-in-vm.sh"), "scripts/ble-vm/bench.sh"], env=env,
                            capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if "bench:" in line:
            print("   ", line.strip()[line.find("bench:"):])
    print(f"    VM exited {result.returncode} after {time.monotonic() - started:.0f} s", flush=True)
    out = WORK / f"results-{label}.jsonl"
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows: list[dict]) -> dict:
    def pick(client, kind, field):
        out = []
        for r in rows:
            if r["client"] != client or r["kind"] != kind:
                continue
            if r["status"] != 0:
                out.append(None)
                continue
            if field == "process":
                out.append(r["process_seconds"])
            else:
                inner = r.get("inner") or {}
                out.append(inner.get(field))
        return out

    s = {}
    for client, upload_field, echo_field in (("smpctl", "upload_seconds", "round_trip_seconds"),
                                              ("smpclient", "upload_seconds", "echo_seconds")):
        ups = pick(client, "upload", "process")
        s[client] = {
            "upload_process": median(ups),
            "upload": median(pick(client, "upload", upload_field)),
            "echo_process": median(pick(client, "echo", "process")),
            "echo_round_trip": median(pick(client, "echo", echo_field)),
            "failed_runs": sum(1 for r in rows if r["client"] == client and r["status"] != 0),
            "runs": sum(1 for r in rows if r["client"] == client),
        }
    return s


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f} ×"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image-kib", type=int, default=128)
    parser.add_argument("--mtu", type=int, default=512)
    parser.add_argument("--buf-size", type=int, default=2048, help="the peripheral's SMP buffer (--buf-size)")
    parser.add_argument("--peer-timeout", type=int, default=300, help="seconds one smpclient upload may take")
    parser.add_argument("--modes", default="off,on", help="EATT modes: off (Channels = 1), on (Channels = 3)")
    parser.add_argument("--clients", choices=["both", "smpctl"], default="both",
                        help="smpctl: leave the baseline out (quick runs of smpctl alone)")
    parser.add_argument("--label", default="", help="a suffix for the result files of this run")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--smpctl-query", default="", help="more ble: options for smpctl, e.g. '&write=command'")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.no_build:
        print("=== building the static release binary ===", flush=True)
        sh(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "smpctl"], cwd=REPO,
           stdout=subprocess.DEVNULL)
    print("=== peers and image ===", flush=True)
    ensure_pylib()
    image = make_image(args.image_kib)
    print(f"    image {image.name}: {image.stat().st_size} bytes", flush=True)
    summaries = {}
    for mode in args.modes.split(","):
        channels = {"off": 1, "on": 3}[mode]
        rows = run_vm(f"eatt-{mode}{args.label}", channels, args, image)
        summaries[mode] = summarize(rows)
    (WORK / "summary.json").write_text(json.dumps(summaries, indent=2))
    print()
    print(f"| EATT | client | whole `image upload` process s | upload s | echo round trip ms | whole echo process s | failed runs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode, s in summaries.items():
        for client in ("smpctl", "smpclient"):
            c = s[client]
            rt = None if c["echo_round_trip"] is None else c["echo_round_trip"] * 1000
            print(f"| {mode} | {client} | {fmt(c['upload_process'])} | {fmt(c['upload'])} | {fmt(rt, 1)} | "
                  f"{fmt(c['echo_process'])} | {c['failed_runs']} of {c['runs']} |")
    print()
    print("| EATT | smpclient ÷ smpctl, whole upload process | upload itself | echo round trip |")
    print("|---|---:|---:|---:|")
    for mode, s in summaries.items():
        a, b = s["smpctl"], s["smpclient"]
        print(f"| {mode} | {ratio(b['upload_process'], a['upload_process'])} | {ratio(b['upload'], a['upload'])} | "
              f"{ratio(b['echo_round_trip'], a['echo_round_trip'])} |")
    if "on" in summaries and "off" in summaries:
        on, off = summaries["on"]["smpctl"]["upload"], summaries["off"]["smpctl"]["upload"]
        if on and off:
            print(f"\nsmpctl upload speed with EATT on ÷ off: {off / on:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
