#!/usr/bin/env python3
"""Upload benchmark: smpctl against smpclient and mcumgr-toolkit, on the smpctl simulator.

Usage (from the package root; scripts/benchmark.sh does exactly this):

    python3 Benchmarks/run.py [--no-build] [--smpctl PATH] [--out BENCHMARKS.md] [--only SUBSTRING]

It builds smpctl in release, makes signed MCUboot images (256 KiB, 1 MiB, 8 MiB) with imgtool and a
throwaway key, then for every (profile, image, client) starts a fresh `smpctl simulate` with the
profile's emulated link, uploads the image and records the wall time, the upload time, throughput,
the percentage of the link's upload capacity, and the client's CPU time and peak RSS (from
os.wait4 on the client process). It writes BENCHMARKS.md. It is a benchmark, not a test.

The peers run as child processes of this script (`run.py --peer ...`) so that their CPU time and
RSS are measured the same way as smpctl's.

Only the standard library plus smpclient, mcumgr-toolkit and imgtool (all from PyPI).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KiB = 1024
MiB = 1024 * 1024
SLOT_SIZE = 16 * MiB
BUF_SIZE = 2048  # the simulator's defaults, reported by mcumgr params
BUF_COUNT = 4
SIM_START_TIMEOUT_S = 30.0
BUILD_TIMEOUT_S = 1800.0

# Every process this script starts, so that they can be killed whatever happens.
_children: dict[int, subprocess.Popen] = {}


def _kill_children() -> None:
    for proc in list(_children.values()):
        if proc.poll() is None:
            try:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # measured clients run in their own group
                except OSError:
                    proc.kill()
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
    _children.clear()


atexit.register(_kill_children)


def _on_signal(signum: int, _frame: Any) -> None:
    _kill_children()
    sys.exit(128 + signum)


# ---------------------------------------------------------------------------------------------
# The link model, as in Sources/SMPCtlSimulator/LinkModel.swift (uploadCapacity(fileLength:...)).
# Used for the image sizes other than the 1 MiB the simulator reports; cross-checked against it.
# ---------------------------------------------------------------------------------------------

SMP_HEADER = 8


def cbor_head_length(n: int) -> int:
    if n < 24:
        return 1
    if n <= 0xFF:
        return 2
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def upload_fixed(offset: int, first_length: int | None) -> int:
    """Encoded body bytes of an upload request other than the data bytes and their head."""
    if first_length is not None:
        # {len, off, sha, data}: map head, "len"+uint, "off"+uint, "sha"+bstr(32), "data"
        return 1 + 4 + cbor_head_length(first_length) + 4 + cbor_head_length(offset) + 4 + 34 + 5
    return 1 + 4 + cbor_head_length(offset) + 5  # {off, data}


def largest_data_length(budget: int, offset: int, first_length: int | None) -> int:
    fixed = upload_fixed(offset, first_length)
    n = budget - fixed - 1
    while n > 0 and n + cbor_head_length(n) + fixed > budget:
        n -= 1
    return max(n, 0)


def serial_encoded_length(n: int, max_frame: int = 127) -> int:
    characters = 4 * ((n + 4 + 2) // 3)
    per_frame = max(4, ((max(max_frame, 8) - 4) // 4) * 4)
    frames = (characters + per_frame - 1) // per_frame
    return characters + 3 * frames


@dataclass
class Link:
    """A parsed `--link` value (without flash timing; no profile here uses it)."""

    spec: str | None
    kind: str = "ideal"
    baud: int = 0
    mtu: int = 247
    interval: float = 0.015
    ppe: int = 6
    phy: str = "2m"
    dle: int = 251
    reassembly: bool = True

    @staticmethod
    def parse(spec: str | None) -> "Link":
        link = Link(spec)
        if not spec or spec == "ideal":
            return link
        if ";" in spec:
            raise ValueError("flash timing is not modelled by this script")
        if spec.startswith("serial:"):
            link.kind, link.baud = "serial", int(spec[7:])
            return link
        if spec.startswith("ble"):
            link.kind = "ble"
            for pair in filter(None, spec[4:].split(",")):
                key, value = pair.split("=", 1)
                if key == "mtu":
                    link.mtu = int(value)
                elif key == "interval":
                    link.interval = float(value[:-2]) / 1000 if value.endswith("ms") else float(value)
                elif key in ("ppe", "packets"):
                    link.ppe = int(value)
                elif key == "phy":
                    link.phy = value
                elif key == "dle":
                    link.dle = int(value)
                elif key == "reassembly":
                    link.reassembly = value in ("yes", "true", "1", "on")
                else:
                    raise ValueError(f"unknown BLE parameter {key}")
            return link
        raise ValueError(f"unknown link {spec}")

    buf_size: int = BUF_SIZE

    @property
    def request_size(self) -> int:
        if self.kind == "ble" and not self.reassembly:
            return min(self.buf_size, self.mtu - 3)
        if self.kind == "serial":
            # Zephyr decodes the frame's length and CRC16 into the same net_buf (serial_util.c).
            return self.buf_size - 4
        return self.buf_size

    def packets_per_interval(self) -> int:
        rate = {"1m": 1e6, "2m": 2e6, "coded": 125e3}[self.phy]
        packet_time = (self.dle + 14) * 8 / rate + 150e-6 + 10 * 8 / rate + 150e-6
        return max(1, min(self.ppe, int(self.interval / packet_time)))

    def transfer_seconds(self, n: int) -> float:
        if self.kind == "serial":
            return serial_encoded_length(n) * 10 / self.baud
        if self.kind == "ble":
            att = max(1, self.mtu - 3)
            remaining, ll = n, 0
            while True:
                write = min(remaining, att)
                ll += max(1, (write + 7 + self.dle - 1) // self.dle)
                remaining -= write
                if remaining <= 0:
                    break
            return ll * self.interval / self.packets_per_interval()
        return 0.0

    def upload_capacity(self, file_length: int, request_size: int | None = None) -> float | None:
        """File bytes per second with the link never idle (LinkModel.uploadCapacity(fileLength:...))."""
        if self.kind == "ideal":
            return None
        budget = (request_size or self.request_size) - SMP_HEADER
        offset, up, down = 0, 0.0, 0.0
        while offset < file_length:
            first = file_length if offset == 0 else None
            count = min(file_length - offset, largest_data_length(budget, offset, first))
            if count <= 0:
                return None
            body = upload_fixed(offset, first) + cbor_head_length(count) + count
            up += self.transfer_seconds(SMP_HEADER + body)
            down += self.transfer_seconds(SMP_HEADER + 8)
            offset += count
        busiest = max(up, down)
        return file_length / busiest if busiest > 0 else None


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------


@dataclass
class Profile:
    name: str
    transport: str  # "udp", "pty" or "inproc"
    link: str | None
    sizes: list[str]  # image names ("256K", "1M", "8M")
    peers: bool = True
    peer_sizes: list[str] | None = None  # sizes for the peers (default: sizes)
    ble: bool = False  # counts for the >= 90 % target when MTU 247/498
    sim_args: list[str] | None = None  # extra `smpctl simulate` options (buffer, UDP MTU)
    buf_size: int = BUF_SIZE  # the device buffer those options give
    peer_request: int | None = None  # the request size the peers are set up with (default: the device's)

    def link_model(self) -> "Link":
        link = Link.parse(self.link)
        link.buf_size = self.buf_size
        return link

    def peer_size_list(self) -> list[str]:
        return self.sizes if self.peer_sizes is None else self.peer_sizes


SLOW_BLE_65 = "ble:mtu=65,interval=100ms,ppe=2,phy=1m,dle=27,reassembly=yes"
SLOW_BLE_23 = "ble:mtu=23,interval=50ms,ppe=2,phy=1m,dle=27,reassembly=yes"

PROFILES: list[Profile] = [
    # The device takes datagrams as large as its buffer (CONFIG_MCUMGR_TRANSPORT_UDP_MTU = buf_size);
    # smpctl learns that size, the peers are given it.
    Profile("ideal UDP", "udp", None, ["256K", "1M", "8M"]),
    # The real Zephyr smp_svr peer reports 2475-byte buffers; smpclient keeps its default MTU (1500).
    Profile("ideal UDP, 2475-byte buffers, smpclient's default MTU", "udp", None, ["1M"],
            sim_args=["--buf-size", "2475", "--udp-mtu", "2475"], buf_size=2475, peer_request=1472),
    # Zephyr's default UDP MTU (1500) under 2048-byte buffers: smpctl's 2048-byte probe is lost, it learns 1472.
    Profile("ideal UDP, UDP MTU 1500 under 2048-byte buffers", "udp", None, ["1M"],
            sim_args=["--udp-mtu", "1500"], peer_request=1472),
    Profile("ideal serial PTY", "pty", None, ["256K", "1M"]),
    Profile("in-process", "inproc", None, ["256K", "1M", "8M"], peers=False),
    Profile("BLE MTU 247, 7.5 ms", "udp", "ble:mtu=247,interval=7.5ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], ble=True),
    Profile("BLE MTU 247, 15 ms", "udp", "ble:mtu=247,interval=15ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], ble=True),
    Profile("BLE MTU 247, 50 ms", "udp", "ble:mtu=247,interval=50ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["256K"], ble=True),
    Profile("BLE MTU 247, 15 ms, no reassembly", "udp", "ble:mtu=247,interval=15ms,ppe=6,phy=2m,dle=251,reassembly=no", ["256K"], ble=True),
    Profile("BLE MTU 498, 7.5 ms", "udp", "ble:mtu=498,interval=7.5ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], ble=True),
    Profile("BLE MTU 498, 15 ms", "udp", "ble:mtu=498,interval=15ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], ble=True),
    Profile("BLE MTU 498, 50 ms", "udp", "ble:mtu=498,interval=50ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["256K"], ble=True),
    Profile("BLE MTU 23, 15 ms (1M PHY, DLE 27)", "udp", "ble:mtu=23,interval=15ms,ppe=6,phy=1m,dle=27,reassembly=yes", ["256K"]),
    # Slow links: the issue-9 loop case (MTU 65, 100 ms, 2 packets per event) and worse.
    Profile("BLE MTU 65, 100 ms, 2 per event (slow)", "udp", SLOW_BLE_65, ["32K"]),
    Profile("BLE MTU 23, 50 ms, 2 per event (slow)", "udp", SLOW_BLE_23, ["32K"]),
    Profile("serial 9600 (PTY)", "pty", "serial:9600", ["32K"]),
    Profile("serial 115200 (PTY)", "pty", "serial:115200", ["256K"]),
    Profile("serial 1000000 (PTY)", "pty", "serial:1000000", ["1M"]),
    # smpctl alone with the simulator in its own process: the same emulated BLE links without the UDP hop.
    Profile("in-process, BLE MTU 247, 15 ms", "inproc", "ble:mtu=247,interval=15ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], peers=False),
    Profile("in-process, BLE MTU 498, 7.5 ms", "inproc", "ble:mtu=498,interval=7.5ms,ppe=6,phy=2m,dle=251,reassembly=yes", ["1M"], peers=False),
    Profile("in-process, BLE MTU 65, 100 ms, 2 per event (slow)", "inproc", SLOW_BLE_65, ["32K"], peers=False),
]

CLIENTS = ["smpctl", "smpclient", "mcumgr-toolkit"]


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


@dataclass
class Measured:
    status: int | None  # None: timed out (killed)
    wall: float
    cpu: float
    maxrss_kib: int
    stdout: str
    stderr: str


TIME = "/usr/bin/time"  # GNU time: reports the child's own rusage (see run_measured)


def run_measured(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> Measured:
    """Runs a child with stdout/stderr to files and returns its wall time, CPU time and peak RSS.

    The child runs under GNU time, which reports the rusage of the process it starts. os.wait4 on a
    child of this script would not do: Linux carries the forking process's RSS high-water mark
    across fork and exec, so every child of this Python process would report at least the parent's
    RSS (about 30 MiB) as its ru_maxrss. GNU time itself is tiny, so its child's figure is its own.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".time") as usage_file:
        full = [TIME, "-o", usage_file.name, "-f", "%M %U %S", *argv] if os.access(TIME, os.X_OK) else argv
        start = time.monotonic()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        _children[proc.pid] = proc
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        wall = time.monotonic() - start
        _children.pop(proc.pid, None)
        out.seek(0)
        err.seek(0)
        fields = usage_file.read().split()
        try:
            # The last line is "%M %U %S"; before it GNU time may write "Command exited with ...".
            rss, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
        except (IndexError, ValueError):
            rss, user, system = 0, 0.0, 0.0
        return Measured(
            status=None if timed_out else proc.returncode,
            wall=wall,
            cpu=user + system,
            maxrss_kib=rss,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


class Simulator:
    """A fresh `smpctl simulate` for one upload; always killed on exit."""

    def __init__(self, smpctl: str, transport: str, link: str | None, log_dir: Path, label: str,
                 extra: list[str] | None = None) -> None:
        self.argv = [smpctl, "simulate", "--udp" if transport == "udp" else "--pty"]
        if transport == "udp":
            # A device whose UDP MTU is its buffer size unless the profile says otherwise.
            self.argv += ["127.0.0.1:0", "--udp-mtu", str(BUF_SIZE)]
        self.argv += ["--slot-size", str(SLOT_SIZE), "--exit-after", "900"] + (extra or [])
        if link:
            self.argv += ["--link", link]
        self.log_path = log_dir / f"sim-{re.sub(r'[^A-Za-z0-9]+', '-', label)}.log"
        self.proc: subprocess.Popen | None = None
        self.connection = ""
        self.link_line = ""

    def __enter__(self) -> "Simulator":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log)
        _children[self.proc.pid] = self.proc
        try:
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], SIM_START_TIMEOUT_S)
            if not ready:
                raise RuntimeError(f"simulator did not start within {SIM_START_TIMEOUT_S}s")
            self.connection = self.proc.stdout.readline().decode().strip()
            if not (self.connection.startswith("udp:") or self.connection.startswith("serial:")):
                raise RuntimeError(f"simulator printed {self.connection!r} (log {self.log_path})")
            # The link line is written to stderr before the connection is announced.
            self._log.flush()
            self.link_line = next(
                (l for l in self.log_path.read_text(errors="replace").splitlines() if l.startswith("link:")), "")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"# simulator pid {self.proc.pid} did not exit after SIGKILL", flush=True)
            _children.pop(self.proc.pid, None)
            if self.proc.stdout:
                self.proc.stdout.close()
        self._log.close()

    @property
    def port(self) -> int:
        return int(self.connection.rsplit(":", 1)[1])

    @property
    def device(self) -> str:
        return self.connection.split(":", 1)[1]

    def reported_capacity(self) -> tuple[float, int] | None:
        """(KiB/s, request size) from `link: ...; upload capacity X KiB/s with N-byte requests`."""
        m = re.search(r"upload capacity ([0-9.]+) KiB/s with (\d+)-byte requests", self.link_line)
        return (float(m.group(1)), int(m.group(2))) if m else None


# ---------------------------------------------------------------------------------------------
# Peers (run as `run.py --peer NAME ...` child processes)
# ---------------------------------------------------------------------------------------------


def peer_main(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    result: dict[str, Any] = {"ok": False, "length": len(data)}
    try:
        if args.peer == "smpclient":
            import asyncio

            result.update(asyncio.run(_smpclient_upload(args, data)))
        elif args.peer == "mcumgr-toolkit":
            result.update(_mcumgr_toolkit_upload(args, data))
        else:
            raise ValueError(args.peer)
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported to the parent
        result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


async def _smpclient_upload(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from smpclient import SMPClient
    from smpclient.transport.udp import SMPUDPTransport

    class PortUDPTransport(SMPUDPTransport):
        """`SMPClient.connect` passes only the address; this supplies the port."""

        def __init__(self, port: int, mtu: int) -> None:
            super().__init__(mtu=mtu)
            self._port = port

        async def connect(self, address: str, timeout_s: float, port: int | None = None) -> None:
            await super().connect(address, timeout_s, port=self._port if port is None else port)

    if args.transport == "udp":
        # smpclient's UDP transport sizes requests as mtu - 28 and ignores the device's buf_size:
        # give it an MTU that makes its requests exactly as large as the device's buffer.
        transport = PortUDPTransport(args.port, mtu=args.request_size + 28)
        address = "127.0.0.1"
    else:
        from smpclient.transport.serial import SMPSerialTransport  # needs pyserial (smpclient[serial])

        transport = SMPSerialTransport()  # Auto: requests of buf_size - 4, from mcumgr params
        address = args.device
    client = SMPClient(transport, address, timeout_s=10.0)
    await asyncio_wait(client.connect(), 20)
    try:
        start = time.monotonic()
        last = 0
        async for offset in client.upload(data, first_timeout_s=30.0, subsequent_timeout_s=10.0):
            last = offset
        seconds = time.monotonic() - start
        if last != len(data):
            raise RuntimeError(f"upload ended at {last} of {len(data)}")
        return {"seconds": seconds, "request_size": transport.max_unencoded_size}
    finally:
        await asyncio_wait(client.disconnect(), 10)


async def asyncio_wait(aw: Any, timeout: float) -> Any:
    import asyncio

    return await asyncio.wait_for(aw, timeout)


def _mcumgr_toolkit_upload(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    import mcumgr_toolkit

    if args.transport == "udp":
        client = mcumgr_toolkit.MCUmgrClient.udp("127.0.0.1", args.port, timeout_ms=10000)
    else:
        client = mcumgr_toolkit.MCUmgrClient.serial(args.device, baud_rate=args.baud, timeout_ms=10000)
    with client:
        # Its default frame size is small; read the device's buf_size as its docs advise.
        client.use_auto_frame_size()
        sha = hashlib.sha256(data).digest()
        start = time.monotonic()
        client.image_upload(data, checksum=sha)
        seconds = time.monotonic() - start
    return {"seconds": seconds}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    profile: Profile
    size_name: str
    length: int
    client: str
    ok: bool
    wall: float = 0.0
    upload_s: float = 0.0
    cpu: float = 0.0
    rss_kib: int = 0
    capacity: float | None = None  # bytes/s
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.length / self.upload_s if self.ok and self.upload_s > 0 else 0.0

    @property
    def percent(self) -> float | None:
        return 100 * self.rate / self.capacity if self.ok and self.capacity else None


def sh(argv: list[str], timeout: float = 60, cwd: Path | None = None) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"unavailable ({e})"


def make_images(tmp: Path) -> dict[str, Path]:
    key = tmp / "throwaway-key.pem"
    subprocess.run([sys.executable, "-m", "imgtool.main", "keygen", "-k", str(key), "-t", "ecdsa-p256"],
                   check=True, timeout=60, capture_output=True)
    images = {}
    for name, size in (("32K", 32 * KiB), ("256K", 256 * KiB), ("1M", MiB), ("8M", 8 * MiB)):
        raw = tmp / f"payload-{name}.bin"
        # Payload sized so that header (0x200) + payload + TLVs come to about `size`.
        raw.write_bytes(os.urandom(size - 0x200 - 150))
        out = tmp / f"image-{name}.bin"
        subprocess.run([sys.executable, "-m", "imgtool.main", "sign", "--key", str(key), "--header-size", "0x200",
                        "--align", "4", "--version", "1.2.3", "--slot-size", str(SLOT_SIZE), "--pad-header",
                        str(raw), str(out)], check=True, timeout=120, capture_output=True)
        images[name] = out
    return images


def upload_timeout(link: Link, length: int) -> float:
    cap = link.upload_capacity(length)
    # Generous: a one-at-a-time peer can be far below capacity; ideal links are fast.
    return 60.0 + (4 * length / cap if cap else 0.0)


def run_one(smpctl: str, profile: Profile, size_name: str, image: Path, client: str, log_dir: Path,
            python: str) -> Row:
    length = image.stat().st_size
    link = profile.link_model()
    row = Row(profile, size_name, length, client, ok=False)
    label = f"{profile.name}-{size_name}-{client}"
    timeout = upload_timeout(link, length)
    capacity = link.upload_capacity(length)
    row.capacity = capacity
    if profile.transport == "inproc":
        conn = f"sim?slot-size={SLOT_SIZE}" + (f"&link={profile.link}" if profile.link else "")
        m = run_measured([smpctl, "-c", conn, "--json", "image", "upload", str(image)], timeout)
        return finish_smpctl(row, m)
    with Simulator(smpctl, profile.transport, profile.link, log_dir, label, profile.sim_args) as sim:
        reported = sim.reported_capacity()
        if reported:
            row.extra["sim_capacity_kib_1m"] = reported[0]
            row.extra["sim_request_size"] = reported[1]
        if client == "smpctl":
            # Default options: no ?mtu= (smpctl learns the datagram size), --timeout or --window.
            # A serial link states its baud rate, as a real UART needs (on a PTY it only tells
            # smpctl how slow the line is).
            conn = sim.connection + (f"?baud={link.baud}" if link.kind == "serial" else "")
            m = run_measured([smpctl, "-c", conn, "--json", "image", "upload", str(image)], timeout)
            return finish_smpctl(row, m)
        argv = [python, str(Path(__file__).resolve()), "--peer", client, "--file", str(image),
                "--transport", "udp" if profile.transport == "udp" else "serial",
                "--request-size", str(profile.peer_request or link.request_size)]
        argv += ["--port", str(sim.port)] if profile.transport == "udp" else ["--device", sim.device]
        m = run_measured(argv, timeout)
        return finish_peer(row, m)


def finish_smpctl(row: Row, m: Measured) -> Row:
    row.wall, row.cpu, row.rss_kib = m.wall, m.cpu, m.maxrss_kib
    if m.status is None:
        row.note = "timed out"
        return row
    try:
        doc = json.loads(m.stdout)
    except json.JSONDecodeError:
        doc = {}
    if m.status != 0 or not doc.get("ok"):
        row.note = f"exit {m.status}: {(m.stderr or m.stdout).strip()[-300:]}"
        return row
    row.ok = True
    row.upload_s = float(doc.get("upload_seconds", doc.get("seconds", 0)))
    row.extra.update({k: doc.get(k) for k in ("chunks", "chunk_size", "window")})
    return row


def finish_peer(row: Row, m: Measured) -> Row:
    row.wall, row.cpu, row.rss_kib = m.wall, m.cpu, m.maxrss_kib
    if m.status is None:
        row.note = "timed out"
        return row
    line = next((l for l in reversed(m.stdout.splitlines()) if l.startswith("{")), "")
    try:
        doc = json.loads(line)
    except json.JSONDecodeError:
        doc = {}
    if not doc.get("ok"):
        row.note = doc.get("error") or f"exit {m.status}: {m.stderr.strip()[-300:]}"
        return row
    row.ok = True
    row.upload_s = float(doc["seconds"])
    return row


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def size_label(length: int) -> str:
    return f"{length / KiB:.0f} KiB" if length < MiB else f"{length / MiB:.2f} MiB"


def machine_info() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / MiB:.1f} GiB"
    except OSError:
        pass
    return [f"- CPUs (nproc): {os.cpu_count()} ({sh(['nproc'])} available to this process)",
            f"- CPU model: {cpu}",
            f"- Memory: {mem}",
            f"- OS: {platform.platform()}",
            f"- Load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def versions(smpctl: str) -> list[str]:
    def pkg(name: str) -> str:
        try:
            from importlib.metadata import version

            return version(name)
        except Exception:  # noqa: BLE001
            return "not installed"

    commit = sh(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO)
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no", "Sources", "Package.swift"], cwd=REPO)
    swift = sh(["swift", "--version"]).splitlines()
    return [f"- smpctl: commit {commit}{' (with uncommitted changes in Sources)' if dirty else ''}, "
            f"release build (`{Path(smpctl).relative_to(REPO) if Path(smpctl).is_relative_to(REPO) else smpctl}`)",
            f"- Swift: {swift[0] if swift else 'unknown'}",
            f"- smpclient {pkg('smpclient')} (smp {pkg('smp')}), mcumgr-toolkit {pkg('mcumgr-toolkit')}, "
            f"imgtool {pkg('imgtool')}",
            f"- Python {platform.python_version()}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smpctl", default=str(REPO / ".build" / "release" / "smpctl"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release build")
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--only", help="run only profiles whose name contains this")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    # peer mode
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--transport", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--baud", type=int, default=115200, help=argparse.SUPPRESS)
    parser.add_argument("--request-size", type=int, default=BUF_SIZE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer_main(args)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    started = time.monotonic()
    command = "scripts/benchmark.sh" if os.environ.get("SMPCTL_BENCHMARK_WRAPPER") else \
        "python3 Benchmarks/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if not args.no_build:
        print("# swift build -c release --product smpctl", flush=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "smpctl"], cwd=REPO, check=True,
                       timeout=BUILD_TIMEOUT_S)
    smpctl = str(Path(args.smpctl).resolve())
    if not os.access(smpctl, os.X_OK):
        print(f"{smpctl} is not executable; build it first", file=sys.stderr)
        return 2
    clients = [c for c in args.clients.split(",") if c]
    profiles = [p for p in PROFILES if not args.only or args.only.lower() in p.name.lower()]
    header = machine_info() + [""] + versions(smpctl)

    rows: list[Row] = []
    cross_checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smpctl-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print("# making signed images", flush=True)
        images = make_images(tmp)
        for profile in profiles:
            for client in clients:
                if client != "smpctl" and not profile.peers:
                    continue
                sizes = profile.sizes if client == "smpctl" else profile.peer_size_list()
                for size_name in sizes:
                    try:
                        row = run_one(smpctl, profile, size_name, images[size_name], client, tmp, sys.executable)
                    except Exception as e:  # noqa: BLE001 - one failure must not end the run
                        row = Row(profile, size_name, images[size_name].stat().st_size, client, ok=False,
                                  note=f"{type(e).__name__}: {e}")
                    rows.append(row)
                    if "sim_capacity_kib_1m" in row.extra and client == "smpctl":
                        mine = profile.link_model().upload_capacity(MiB, row.extra["sim_request_size"])
                        sim_cap = row.extra["sim_capacity_kib_1m"]
                        ok = mine is not None and abs(mine / KiB - sim_cap) <= 0.06
                        cross_checks.append(f"{profile.name}: simulator {sim_cap:.1f} KiB/s, this script "
                                            f"{(mine or 0) / KiB:.2f} KiB/s for 1 MiB "
                                            f"with {row.extra['sim_request_size']}-byte requests"
                                            f"{'' if ok else ' — MISMATCH'}")
                    print(f"{profile.name:38} {size_name:>4} {client:15} "
                          + (f"{row.upload_s:7.2f} s {row.rate / KiB:8.1f} KiB/s {fmt(row.percent):>6} % "
                             f"cpu {row.cpu:5.2f} s rss {row.rss_kib / KiB:6.1f} MiB"
                             if row.ok else f"FAILED: {row.note}"), flush=True)
        elapsed = time.monotonic() - started
        Path(args.out).write_text(render(rows, header, command, cross_checks, elapsed, clients))
    print(f"# wrote {args.out} ({elapsed:.0f} s)", flush=True)
    return 0


def render(rows: list[Row], header: list[str], command: str, cross_checks: list[str], elapsed: float,
           clients: list[str]) -> str:
    out: list[str] = []
    w = out.append
    today = datetime.date.today().isoformat()
    w("# Upload benchmark\n")
    w(f"One run of `{command}` on {today}, {elapsed / 60:.1f} minutes including the release build. "
      "Generated by [Benchmarks/run.py](Benchmarks/run.py); see [Benchmarks/README.md](Benchmarks/README.md) "
      "for what each column means. A benchmark, not a test: it is not part of `scripts/test.sh` or CI.\n")
    w("## Machine\n")
    w("\n".join(header[: header.index("")]))
    w("\nThe machine is shared: other builds ran at the same time, so wall and CPU times are noisy "
      "(a few percent on the emulated links, more on the ideal ones, where the numbers mostly measure "
      "process start-up and scheduling).\n")
    w("## Versions\n")
    w("\n".join(header[header.index("") + 1:]) + "\n")
    w("## Method\n")
    w("- Images: signed MCUboot images made with `imgtool sign` (ECDSA P-256 throwaway key, random payload, "
      "header 0x200) of about 32 KiB, 256 KiB, 1 MiB and 8 MiB; exact lengths in the table.")
    w(f"- Every upload gets a fresh `smpctl simulate --slot-size {SLOT_SIZE}` (`--udp 127.0.0.1:0` or `--pty`) "
      f"with the profile's `--link`, the default `--buf-size {BUF_SIZE} --buf-count {BUF_COUNT}`, and over UDP "
      f"`--udp-mtu {BUF_SIZE}` (a device whose UDP MTU is its buffer size) unless the profile names other options.")
    w("- smpctl: `smpctl -c CONNECTION --json image upload FILE` with default options (on emulated serial links "
      "`?baud=` states the line's rate, as a real UART needs): no `?mtu=` (over UDP it "
      "learns the datagram size with echo probes before the upload; that time is outside **Upload s** and inside "
      "**Wall s**), default window buf_count − 1 = 3. "
      "In-process: `smpctl -c 'sim?slot-size=16777216' --json image upload FILE` (the simulator runs inside the "
      "smpctl process, so its CPU time and RSS include the simulated device and its 16 MiB slots).")
    w("- smpclient: `SMPClient.upload` over `SMPUDPTransport` (MTU set to buf_size + 28 so that its requests "
      "fill the device's buffer; its default 1500, which gives 1472-byte requests, where the profile says so) or "
      "`SMPSerialTransport()` (Auto: requests of buf_size − 4 from mcumgr params) on the PTY.")
    w("- mcumgr-toolkit: `MCUmgrClient.udp(...)` or `MCUmgrClient.serial(pty, 115200)`, then "
      "`use_auto_frame_size()` (reads buf_size, as its documentation advises) and `image_upload(data, checksum=sha)`.")
    w("- Peers run as child processes (`run.py --peer ...`) so that CPU time and RSS are measured the same way "
      "(GNU `/usr/bin/time -f '%M %U %S'` around each client process; see run.py for why not os.wait4); "
      "their CPU time and RSS include the Python interpreter.")
    w("- **Upload s** is the time the client itself reports for the upload (smpctl's JSON `upload_seconds`; "
      "the peers are timed around their upload call) — from the first chunk to the last answer. "
      "**Wall s** is the whole client process (start-up, connect, params, the upload, and for smpctl the "
      "image list it prints after). **KiB/s** and **% cap** use the upload time.")
    w("- **Capacity**: the link model's upload capacity for this image length and the device's request size "
      "(`LinkModel.uploadCapacity(fileLength:requestSize:sectorSize:)`), recomputed in run.py and cross-checked "
      "against the 1 MiB figure the simulator prints (below). Ideal links have no capacity (–).\n")
    w("## Link model (brief)\n")
    w("From [Sources/SMPCtlSimulator/LinkModel.swift](Sources/SMPCtlSimulator/LinkModel.swift); each direction is a "
      "queue, a packet starts when the previous one in that direction has finished.\n")
    w("- **BLE**: an SMP packet of n bytes is ⌈n/(MTU−3)⌉ ATT writes; a write of w bytes is ⌈(w+7)/DLE⌉ "
      "link-layer packets; one LL packet of p bytes takes (p+14)·8/rate + 150 µs + 10·8/rate + 150 µs; "
      "a connection event carries e = min(ppe, ⌊interval/packet time⌋) packets, so a packet takes interval/e. "
      "rate = 1 Mbit/s (1M), 2 Mbit/s (2M), 125 kbit/s (coded). Without reassembly a request is at most MTU−3.")
    w("- **Serial**: an SMP packet of n bytes is 4·⌈(n+6)/3⌉ base64 characters (length + CRC), in lines of 120 "
      "characters with 3 bytes of markers and newline each, 10 bit times per byte.")
    w("- **Capacity** for a file: file length ÷ max(uplink time of every exactly sized request, downlink time "
      "of every 16-byte answer, flash time). Flash timing is zero in every profile here.\n")
    if cross_checks:
        w("Capacity cross-check (simulator's stderr line vs this script's formula, 1 MiB):\n")
        w("\n".join(f"- {c}" for c in cross_checks) + "\n")

    w("## Results\n")
    w("| profile | image | client | wall s | upload s | KiB/s | % of capacity | CPU s | peak RSS MiB |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.ok:
            w(f"| {r.profile.name} | {size_label(r.length)} | {r.client} | {r.wall:.2f} | {r.upload_s:.2f} | "
              f"{r.rate / KiB:.1f} | {fmt(r.percent)} | {r.cpu:.2f} | {r.rss_kib / KiB:.1f} |")
        else:
            w(f"| {r.profile.name} | {size_label(r.length)} | {r.client} | {r.wall:.2f} | failed | – | – | "
              f"{r.cpu:.2f} | {r.rss_kib / KiB:.1f} |")
    failures = [r for r in rows if not r.ok]
    if failures:
        w("\nFailures:\n")
        for r in failures:
            w(f"- {r.profile.name}, {size_label(r.length)}, {r.client}: {r.note}")
    caps = [r for r in rows if r.capacity]
    if caps:
        w("\nCapacity used for % (KiB/s): " + "; ".join(sorted({
            f"{r.profile.name} {size_label(r.length)}: {r.capacity / KiB:.1f}" for r in caps if r.client == 'smpctl'})) + ".")

    # Ratios
    w("\n## smpctl against the peers\n")
    w("Throughput ratio = smpctl KiB/s ÷ peer KiB/s (upload time; > 1 means smpctl is faster); "
      "wall ratio = peer wall s ÷ smpctl wall s (whole process).\n")
    w("| profile | image | smpctl/smpclient (throughput) | smpctl/mcumgr-toolkit (throughput) | "
      "smpclient/smpctl (wall) | mcumgr-toolkit/smpctl (wall) |")
    w("|---|---|---:|---:|---:|---:|")
    by_key = {(r.profile.name, r.size_name, r.client): r for r in rows}
    faster_everywhere = True
    losses: list[str] = []
    for r in rows:
        if r.client != "smpctl" or not r.ok:
            continue
        cells = []
        wall_cells = []
        for peer in ("smpclient", "mcumgr-toolkit"):
            p = by_key.get((r.profile.name, r.size_name, peer))
            if p is None:
                cells.append("not run")
                wall_cells.append("not run")
            elif not p.ok:
                cells.append("peer failed")
                wall_cells.append("peer failed")
            else:
                ratio = r.rate / p.rate
                cells.append(f"{ratio:.2f}×")
                wall_cells.append(f"{p.wall / r.wall:.2f}×")
                if ratio <= 1:
                    faster_everywhere = False
                    losses.append(f"{r.profile.name} {size_label(r.length)} vs {peer}: {ratio:.2f}×")
        if all(c == "not run" for c in cells):
            continue
        w(f"| {r.profile.name} | {size_label(r.length)} | {cells[0]} | {cells[1]} | {wall_cells[0]} | {wall_cells[1]} |")

    # RSS
    w("\n## Peak RSS\n")
    rss = {r.size_name: r for r in rows if r.client == "smpctl" and r.profile.name == "ideal UDP" and r.ok}
    rss_ok = None
    if "256K" in rss and "8M" in rss:
        a, b = rss["256K"].rss_kib / KiB, rss["8M"].rss_kib / KiB
        rss_ok = abs(b - a) <= 2
        mid = f", 1 MiB {rss['1M'].rss_kib / KiB:.1f} MiB" if "1M" in rss else ""
        w(f"smpctl over plain UDP (ideal link): 256 KiB image {a:.1f} MiB, 8 MiB image {b:.1f} MiB{mid} "
          f"(difference {b - a:+.1f} MiB).")
    inproc = {r.size_name: r for r in rows if r.client == "smpctl" and r.profile.transport == "inproc" and not r.profile.link and r.ok}
    if inproc:
        w("In-process (includes the simulated device, whose slot holds the image): "
          + ", ".join(f"{size_label(r.length)} {r.rss_kib / KiB:.1f} MiB" for r in inproc.values())
          + "; not used for the target.")

    # Targets
    w("\n## Targets (issue 6)\n")
    ble = [r for r in rows if r.client == "smpctl" and r.profile.ble]
    ble_ok = all(r.ok and (r.percent or 0) >= 90 for r in ble) if ble else None
    w(f"- ≥ 90 % of emulated link capacity, BLE MTU 247/498, buf_count {BUF_COUNT}: "
      f"**{'met' if ble_ok else 'not met' if ble_ok is not None else 'not measured'}** — "
      + "; ".join(f"{r.profile.name} {fmt(r.percent)} %" for r in ble) + ".")
    inproc_ble = [r for r in rows if r.client == "smpctl" and r.profile.transport == "inproc" and r.profile.link and r.ok]
    if inproc_ble:
        w("  - In-process (no UDP hop, same link model): "
          + "; ".join(f"{r.profile.name} {fmt(r.percent)} % (chunks of {r.extra.get('chunk_size')} bytes, window {r.extra.get('window')})" for r in inproc_ble) + ".")
    peers_ran = any(r.client != "smpctl" for r in rows)
    w(f"- Faster than smpclient and mcumgr-toolkit on every profile where they ran (upload throughput): "
      f"**{'met' if faster_everywhere and peers_ran else 'not met' if peers_ran else 'not measured'}**"
      + (" — slower or equal: " + "; ".join(losses) if losses else "") + ".")
    w(f"- Peak RSS within 2 MiB between 256 KiB and 8 MiB: "
      f"**{'met' if rss_ok else 'not met' if rss_ok is not None else 'not measured'}** (see above).")

    w("\n## Targets (issue 9)\n")
    emulated = [r for r in rows if r.client == "smpctl" and r.capacity]
    ok95 = all(r.ok and (r.percent or 0) >= 95 for r in emulated) if emulated else None
    w(f"- Default options (no `--timeout`, `--window` or `?mtu=`), ≥ 95 % of the link model's capacity on every "
      f"emulated profile: **{'met' if ok95 else 'not met' if ok95 is not None else 'not measured'}** — "
      + "; ".join(f"{r.profile.name} {size_label(r.length)} {fmt(r.percent)} %" for r in emulated) + ".")
    udp_ratios = []
    for r in rows:
        if r.client != "smpctl" or r.profile.transport != "udp" or r.profile.link or not r.ok:
            continue
        p = by_key.get((r.profile.name, r.size_name, "smpclient"))
        if p is not None and p.ok:
            udp_ratios.append((r, r.rate / p.rate, r.extra.get("chunk_size")))
    ok4 = all(ratio >= 4 for _, ratio, _ in udp_ratios) if udp_ratios else None
    w(f"- Over UDP with the learned datagram size, ≥ 4× smpclient's upload: "
      f"**{'met' if ok4 else 'not met' if ok4 is not None else 'not measured'}** — "
      + "; ".join(f"{r.profile.name} {size_label(r.length)} {ratio:.2f}× (smpctl chunks of {chunk} bytes)"
                  for r, ratio, chunk in udp_ratios) + ".")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
