#!/usr/bin/env python3
"""Interoperability test: PyPI smpclient 7.3.0 (smp 4.2.0) against `smpctl simulate --udp`.

Usage: python3 Tests/Interop/smpclient_interop.py .build/debug/smpctl

Phase 1 (smpclient -> simulator, smpctl reads back):
  - OS echo, image state read and an image upload with smpclient's own `SMPClient.upload`;
  - `smpctl --json image list` must then show the uploaded image in slot 1.
Phase 2 (smpctl -> simulator, smpclient reads back), on a fresh simulator:
  - `smpctl --json image upload` of the same image;
  - smpclient's image state read must then show it in slot 1.
Phase 3 (file system group 8, both ways), on a fresh simulator:
  - smpclient's `upload_file`, then `smpctl --json fs download` (same bytes, sha256 compared);
  - `smpctl --json fs upload`, then smpclient's `download_file` (same bytes).

Prints PASS/FAIL lines, then `N passed, M failed`; exits 1 if any check failed.
"""

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead
from smpclient.requests.os_management import EchoWrite
from smpclient.transport.udp import SMPUDPTransport

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_PATH = REPO_ROOT / "Tests" / "Fixtures" / "test-image.bin"
EXPECTED_HASH = "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05"
EXPECTED_VERSION = "1.2.3.4"
ECHO_TEXT = "hello from smpclient"

SIM_START_TIMEOUT_S = 30.0  # the first launch of a debug build can be slow on a shared machine
REQUEST_TIMEOUT_S = 5.0
UPLOAD_TIMEOUT_S = 120.0
CLI_TIMEOUT_S = 120.0

passed = 0
failed = 0


def check(name: str, ok: bool, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS: {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL: {name}{': ' + detail if detail else ''}", flush=True)
    return ok


class PortUDPTransport(SMPUDPTransport):
    """`SMPClient.connect` passes only the address; this transport supplies the port."""

    def __init__(self, port: int, mtu: int = 1500) -> None:
        super().__init__(mtu=mtu)
        self._port = port

    async def connect(self, address: str, timeout_s: float, port: int | None = None) -> None:
        await super().connect(address, timeout_s, port=self._port if port is None else port)


class Simulator:
    """A `smpctl simulate --udp 127.0.0.1:0` process; use with `async with`."""

    def __init__(self, binary: str, name: str) -> None:
        self.binary = binary
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"smpctl-interop-{name}-{os.getpid()}.log"

    async def __aenter__(self) -> "Simulator":
        self._stderr = open(self.stderr_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "simulate", "--udp", "127.0.0.1:0", "--exit-after", "120",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )
        try:
            assert self.proc.stdout is not None
            line = (await asyncio.wait_for(self.proc.stdout.readline(), SIM_START_TIMEOUT_S)).decode().strip()
            if not line.startswith("udp:"):
                raise RuntimeError(f"simulator {self.name} printed {line!r}, expected udp:HOST:PORT "
                                   f"(stderr in {self.stderr_path})")
            self.port = int(line.rsplit(":", 1)[1])
        except BaseException:
            await self.__aexit__(None, None, None)  # `async with` does not call __aexit__ when __aenter__ fails
            raise
        print(f"# simulator {self.name}: pid {self.proc.pid}, {line}", flush=True)
        return self

    @property
    def connection(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                print(f"# simulator {self.name} (pid {self.proc.pid}) did not exit after SIGKILL", flush=True)
        self._stderr.close()


async def run_smpctl(binary: str, *args: str) -> tuple[int | None, str, str]:
    """Runs smpctl with a timeout; returns (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        binary, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
        return None, "", f"timed out after {CLI_TIMEOUT_S}s"
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def parse_json_document(name: str, status: int | None, out: str, err: str) -> dict[str, Any] | None:
    if not check(f"{name}: exit status 0", status == 0, f"status {status}, stderr {err.strip()!r}"):
        return None
    try:
        doc = json.loads(out)
    except json.JSONDecodeError as e:
        check(f"{name}: JSON output", False, f"{e}; stdout {out!r}")
        return None
    check(f"{name}: JSON output with \"ok\": true", isinstance(doc, dict) and doc.get("ok") is True, repr(doc))
    return doc if isinstance(doc, dict) else None


def find_slot(images: list[Any], slot: int) -> Any:
    return next((i for i in images if (i.get("slot") if isinstance(i, dict) else i.slot) == slot), None)


async def smpclient_state_read(client: SMPClient, label: str) -> list[Any] | None:
    response = await client.request(ImageStatesRead(), timeout_s=REQUEST_TIMEOUT_S)
    if not check(f"{label}: image state read succeeds", success(response), repr(response)):
        return None
    print(f"# {label}: {[(i.image, i.slot, i.version, bytes(i.hash or b'').hex(), i.active) for i in response.images]}",
          flush=True)
    return list(response.images)


async def phase_smpclient_to_smpctl(binary: str, image: bytes) -> None:
    async with Simulator(binary, "A") as sim:
        client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
        await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
        try:
            # 1. OS echo
            response = await client.request(EchoWrite(d=ECHO_TEXT))
            if check("smpclient echo: success response", success(response), repr(response)):
                check("smpclient echo: reply matches", response.r == ECHO_TEXT, repr(response.r))

            # 2. image state read: the running image is in slot 0 and active
            images = await smpclient_state_read(client, "smpclient before upload")
            if images is not None:
                running = find_slot(images, 0)
                check("smpclient state read: slot 0 entry exists", running is not None, repr(images))
                if running is not None:
                    check("smpclient state read: slot 0 is active", running.active is True, repr(running))
                    check("smpclient state read: slot 0 is image 0", running.image in (None, 0), repr(running))

            # 3. upload with smpclient's own helper, iterating to completion
            offsets: list[int] = []

            async def do_upload() -> None:
                async for offset in client.upload(image, first_timeout_s=10.0,
                                                  subsequent_timeout_s=REQUEST_TIMEOUT_S):
                    offsets.append(offset)

            try:
                await asyncio.wait_for(do_upload(), UPLOAD_TIMEOUT_S)
                upload_error = ""
            except Exception as e:  # noqa: BLE001 - report any failure as a FAIL line
                upload_error = f"{type(e).__name__}: {e}"
            print(f"# smpclient upload: {len(offsets)} responses, offsets {offsets[:3]}...{offsets[-2:]}",
                  flush=True)
            check("smpclient upload: completes without error", not upload_error, upload_error)
            check("smpclient upload: final offset equals image length",
                  bool(offsets) and offsets[-1] == len(image),
                  f"last offset {offsets[-1] if offsets else None}, length {len(image)}")
            check("smpclient upload: offsets increase", offsets == sorted(set(offsets)), repr(offsets))

            images = await smpclient_state_read(client, "smpclient after upload")
            if images is not None:
                secondary = find_slot(images, 1)
                check("smpclient state read after upload: slot 1 holds the image",
                      secondary is not None and bytes(secondary.hash or b"").hex() == EXPECTED_HASH,
                      repr(secondary))
        finally:
            await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)

        # 4. smpctl reads back what smpclient uploaded
        status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "image", "list")
        doc = parse_json_document("smpctl image list", status, out, err)
        if doc is not None:
            slot1 = find_slot(doc.get("images", []), 1)
            check("smpctl image list: slot 1 entry exists", slot1 is not None, out.strip())
            if slot1 is not None:
                check("smpctl image list: slot 1 hash", slot1.get("hash") == EXPECTED_HASH, repr(slot1.get("hash")))
                check("smpctl image list: slot 1 version", slot1.get("version") == EXPECTED_VERSION,
                      repr(slot1.get("version")))


async def phase_smpctl_to_smpclient(binary: str) -> None:
    async with Simulator(binary, "B") as sim:
        # 5. smpctl uploads
        status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "image", "upload", str(IMAGE_PATH))
        doc = parse_json_document("smpctl image upload", status, out, err)
        if doc is not None:
            check("smpctl image upload: reported image hash", doc.get("image_hash") == EXPECTED_HASH,
                  repr(doc.get("image_hash")))

        # 6. smpclient reads the state back
        client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
        await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
        try:
            images = await smpclient_state_read(client, "smpclient after smpctl upload")
            if images is not None:
                slot1 = find_slot(images, 1)
                check("smpclient state read: slot 1 entry exists", slot1 is not None, repr(images))
                if slot1 is not None:
                    check("smpclient state read: slot 1 hash", bytes(slot1.hash or b"").hex() == EXPECTED_HASH,
                          bytes(slot1.hash or b"").hex())
                    check("smpclient state read: slot 1 version", slot1.version == EXPECTED_VERSION,
                          repr(slot1.version))
                slot0 = find_slot(images, 0)
                check("smpclient state read: slot 0 still active", slot0 is not None and slot0.active is True,
                      repr(slot0))
        finally:
            await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)


async def phase_file_system(binary: str) -> None:
    """Group 8 both ways: smpclient's upload_file, read back with `smpctl fs download` (whose
    sha256 check must pass), and `smpctl fs upload`, read back with smpclient's download_file."""
    to_device = hashlib.sha256(b"smpclient").digest() * 200  # 6400 bytes
    from_smpctl = bytes(range(256)) * 23  # 5888 bytes
    async with Simulator(binary, "C") as sim:
        client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
        await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
        try:
            offsets: list[int] = []

            async def do_upload() -> None:
                async for offset in client.upload_file(to_device, "/lfs/from-smpclient.bin",
                                                       timeout_s=REQUEST_TIMEOUT_S):
                    offsets.append(offset)

            try:
                await asyncio.wait_for(do_upload(), UPLOAD_TIMEOUT_S)
                upload_error = ""
            except Exception as e:  # noqa: BLE001
                upload_error = f"{type(e).__name__}: {e}"
            check("smpclient upload_file: completes without error", not upload_error, upload_error)
            check("smpclient upload_file: final offset equals the length",
                  bool(offsets) and offsets[-1] == len(to_device), repr(offsets[-3:]))
        finally:
            await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)

        target = Path(os.environ.get("TMPDIR", "/tmp")) / f"smpctl-interop-fs-{os.getpid()}.bin"
        status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "fs", "download",
                                            "/lfs/from-smpclient.bin", str(target))
        doc = parse_json_document("smpctl fs download", status, out, err)
        if doc is not None:
            check("smpctl fs download: the device's sha256 was compared",
                  (doc.get("hash_check") or {}).get("type") == "sha256", repr(doc.get("hash_check")))
            check("smpctl fs download: same bytes as smpclient uploaded",
                  target.exists() and target.read_bytes() == to_device, str(target))
        target.unlink(missing_ok=True)

        source = Path(os.environ.get("TMPDIR", "/tmp")) / f"smpctl-interop-fs-src-{os.getpid()}.bin"
        source.write_bytes(from_smpctl)
        status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "fs", "upload",
                                            str(source), "/lfs/from-smpctl.bin")
        source.unlink(missing_ok=True)
        doc = parse_json_document("smpctl fs upload", status, out, err)
        if doc is not None:
            check("smpctl fs upload: the device's sha256 matches",
                  (doc.get("hash_check") or {}).get("output") == hashlib.sha256(from_smpctl).hexdigest(),
                  repr(doc.get("hash_check")))

        client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
        await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
        try:
            data = await asyncio.wait_for(client.download_file("/lfs/from-smpctl.bin", timeout_s=REQUEST_TIMEOUT_S),
                                          UPLOAD_TIMEOUT_S)
            check("smpclient download_file: same bytes as smpctl uploaded", data == from_smpctl,
                  f"{len(data)} bytes")
        finally:
            await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)


async def main(binary: str) -> int:
    image = IMAGE_PATH.read_bytes()
    for name, phase in (("smpclient -> smpctl", lambda: phase_smpclient_to_smpctl(binary, image)),
                        ("smpctl -> smpclient", lambda: phase_smpctl_to_smpclient(binary)),
                        ("file system, both ways", lambda: phase_file_system(binary))):
        print(f"# phase: {name}", flush=True)
        try:
            await phase()
        except Exception as e:  # noqa: BLE001 - an aborted phase is a failure, not a crash
            check(f"phase {name} ran to the end", False, f"{type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} PATH/TO/smpctl", file=sys.stderr)
        sys.exit(2)
    binary = sys.argv[1]
    if not os.access(binary, os.X_OK):
        print(f"{binary} is not an executable; run `swift build` first", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(binary)))
