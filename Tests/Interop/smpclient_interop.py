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

Phase 4 (statistics 2, settings 3, shell 9, enumeration 10, both ways), on a fresh simulator:
  - smpclient writes and runs, smpctl reads back: smpclient's WriteSetting, SaveSettings,
    CommitSettings, LoadSettings, DeleteSetting and Execute, then `smpctl --json settings get` and
    `shell exec` must see the same values and output; smpclient's ListOfGroups/GroupData and the
    four enumeration requests must agree with `smpctl --json stat list|show` and
    `enum count|list|single|details` on the same simulator;
  - smpctl writes, smpclient reads back: `smpctl settings set --hex`, then smpclient's ReadSetting;
  - the encoders cross-checked: the request frames `smpctl -v` logs for `settings set|get`,
    `shell exec`, `stat show`, `enum single|details` decode with smp's request classes to the
    same fields; request bodies smp encodes, sent with `smpctl raw --cbor-hex`, are answered,
    and smp's response classes decode smpctl's `response_hex`.
  smpclient 7.3 (smp 4.2) has a request for every command of these groups (stat list/show;
  settings read/write/delete/commit/load/save; shell execute; enum count/list/single/details),
  so none is left out; it has no helper beyond `request` for them (nothing like `upload_file`).

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
from smpclient.requests.enumeration_management import (
    CountSupportedGroups, GroupDetails, GroupId, ListSupportedGroups)
from smpclient.requests.settings_management import (
    CommitSettings, DeleteSetting, LoadSettings, ReadSetting, SaveSettings, WriteSetting)
from smpclient.requests.shell_management import Execute
from smpclient.requests.statistics_management import GroupData, ListOfGroups
import cbor2
import re
import smp.enumeration_management as smpenum
import smp.settings_management as smpset
import smp.shell_management as smpshell
import smp.statistics_management as smpstat

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


async def smpclient_request(client: SMPClient, request: Any, label: str) -> Any:
    """One smpclient request; the response when it succeeded, else None (and a FAIL line)."""
    response = await client.request(request, timeout_s=REQUEST_TIMEOUT_S)
    if not check(f"smpclient {label}: success response", success(response), repr(response)):
        return None
    return response


async def smpctl_json(binary: str, sim: "Simulator", label: str, *args: str) -> dict[str, Any] | None:
    status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", *args)
    return parse_json_document(f"smpctl {label}", status, out, err)


def group_number(value: Any) -> int:
    return int(value.value if hasattr(value, "value") else value)


def logged_requests(stderr: str, group: int, command: int) -> list[bytes]:
    """The request frames `smpctl -v` logged (`tx seq N: HEX`) for one group and command."""
    frames = []
    for match in re.finditer(r"tx seq \d+: ([0-9a-fA-F ]+)", stderr):
        frame = bytes.fromhex(match.group(1).replace(" ", ""))
        if len(frame) >= 8 and int.from_bytes(frame[4:6], "big") == group and frame[7] == command:
            frames.append(frame)
    return frames


async def phase_groups_smpclient_to_smpctl(binary: str, sim: "Simulator") -> None:
    """smpclient writes or reads first; smpctl reads the same simulator and must agree."""
    client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
    await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
    try:
        value = b"\x00\x01from-smpclient"
        await smpclient_request(client, WriteSetting(name="app/interop", val=value), "settings write")
        await smpclient_request(client, SaveSettings(), "settings save")
        await smpclient_request(client, CommitSettings(), "settings commit")
        await smpclient_request(client, LoadSettings(), "settings load")
        read = await smpclient_request(client, ReadSetting(name="app/interop"), "settings read")
        if read is not None:
            check("smpclient settings read: the value it wrote", read.val == value, repr(read.val))
        shell = await smpclient_request(client, Execute(argv=["echo", "hello", "interop"]), "shell execute")
        failing = await smpclient_request(client, Execute(argv=["false"]), "shell execute false")
        stat_list = await smpclient_request(client, ListOfGroups(), "stat list")
        stat_data = {}
        for name in (stat_list.stat_list if stat_list is not None else ()):
            data = await smpclient_request(client, GroupData(name=name), f"stat show {name}")
            if data is not None:
                stat_data[name] = dict(data.fields)
        count = await smpclient_request(client, CountSupportedGroups(), "enum count")
        listed = await smpclient_request(client, ListSupportedGroups(), "enum list")
        singles = []
        for index in range(count.count if count is not None else 0):
            single = await smpclient_request(client, GroupId(index=index), f"enum single {index}")
            singles.append(single)
        details = await smpclient_request(client, GroupDetails(), "enum details")
    finally:
        await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)

    doc = await smpctl_json(binary, sim, "settings get (written by smpclient)", "settings", "get", "app/interop")
    if doc is not None:
        check("smpctl settings get: the value smpclient wrote", doc.get("hex") == value.hex(), repr(doc.get("hex")))
    if shell is not None:
        doc = await smpctl_json(binary, sim, "shell exec", "shell", "exec", "--", "echo", "hello", "interop")
        if doc is not None:
            check("smpctl shell exec: same output as smpclient's Execute",
                  doc.get("output") == shell.o and doc.get("return_code") == shell.ret,
                  f"smpctl {doc.get('output')!r}/{doc.get('return_code')}, smpclient {shell.o!r}/{shell.ret}")
    if failing is not None:
        status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "shell", "exec", "--", "false")
        doc = json.loads(out) if out.strip().startswith("{") else {}
        check("smpctl shell exec false: exit 4 and the return code smpclient read",
              status == 4 and doc.get("return_code") == failing.ret == 1, f"status {status}, {out.strip()!r}")
    if stat_list is not None:
        doc = await smpctl_json(binary, sim, "stat list", "stat", "list")
        if doc is not None:
            check("smpctl stat list: the groups smpclient listed", doc.get("groups") == list(stat_list.stat_list),
                  f"{doc.get('groups')} vs {stat_list.stat_list}")
        for name, fields in stat_data.items():
            doc = await smpctl_json(binary, sim, f"stat show {name}", "stat", "show", name)
            if doc is None:
                continue
            mine = doc.get("fields") or {}
            check(f"smpctl stat show {name}: the fields smpclient read", set(mine) == set(fields), f"{mine} vs {fields}")
            # Packet counters grow between the two reads; the boot count does not.
            check(f"smpctl stat show {name}: counters not below smpclient's",
                  all(mine.get(k, -1) >= v for k, v in fields.items()) and mine.get("boots") == fields.get("boots"),
                  f"{mine} vs {fields}")
    if count is not None:
        doc = await smpctl_json(binary, sim, "enum count", "enum", "count")
        if doc is not None:
            check("smpctl enum count: smpclient's count", doc.get("count") == count.count, f"{doc.get('count')} vs {count.count}")
    if listed is not None:
        doc = await smpctl_json(binary, sim, "enum list", "enum", "list")
        if doc is not None:
            mine = [g.get("id") for g in doc.get("groups", [])]
            theirs = [group_number(g) for g in listed.groups]
            check("smpctl enum list: smpclient's groups in its order", mine == theirs, f"{mine} vs {theirs}")
    for index, single in enumerate(singles):
        if single is None:
            continue
        doc = await smpctl_json(binary, sim, f"enum single {index}", "enum", "single", str(index))
        if doc is not None:
            check(f"smpctl enum single {index}: smpclient's group and end",
                  (doc.get("group") or {}).get("id") == group_number(single.group)
                  and doc.get("end") == bool(single.end), f"{doc} vs {single}")
    if details is not None:
        doc = await smpctl_json(binary, sim, "enum details", "enum", "details")
        if doc is not None:
            mine = [(g.get("id"), g.get("device_name"), g.get("handlers")) for g in doc.get("groups", [])]
            theirs = [(group_number(g.group), g.name, g.handlers) for g in details.groups]
            check("smpctl enum details: smpclient's ids, names and handler counts", mine == theirs, f"{mine} vs {theirs}")

    client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
    await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
    try:
        await smpclient_request(client, DeleteSetting(name="app/interop"), "settings delete")
    finally:
        await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)
    # settings_delete removes the key from storage only (settings_mgmt.c): the running value stays
    # until the next boot loads the storage without it.
    doc = await smpctl_json(binary, sim, "settings get after smpclient's delete", "settings", "get", "app/interop")
    if doc is not None:
        check("smpctl settings get after smpclient's delete: the running value is still there",
              doc.get("hex") == value.hex(), repr(doc))
    status, out, err = await run_smpctl(binary, "-c", sim.connection, "reset")
    check("smpctl reset: exit status 0", status == 0, f"status {status}, {err.strip()!r}")
    status, out, err = await run_smpctl(binary, "-c", sim.connection, "--json", "settings", "get", "app/interop")
    check("smpctl settings get after the delete and a reset: a device error (exit 4)", status == 4,
          f"status {status}, {out.strip()!r}")


async def phase_groups_smpctl_to_smpclient(binary: str, sim: "Simulator") -> None:
    """smpctl writes; smpclient reads back. smpctl's request frames decode with smp's classes."""
    value = bytes([0x0A, 0x0B, 0x0C, 0xFF])
    status, out, err = await run_smpctl(binary, "-v", "-c", sim.connection, "--json", "settings", "set",
                                        "app/from-smpctl", value.hex(), "--hex")
    parse_json_document("smpctl settings set --hex", status, out, err)
    frames = logged_requests(err, 3, 0)
    if check("smpctl -v settings set: the request frame is logged", bool(frames), err[-400:]):
        request = smpset.WriteSettingRequest.loads(frames[-1])
        check("smp decodes smpctl's settings write: same name and value",
              request.name == "app/from-smpctl" and request.val == value, repr(request))
    checks = [
        (("settings", "get", "app/from-smpctl", "--max-size", "16"), 3, 0, smpset.ReadSettingRequest,
         lambda r: r.name == "app/from-smpctl" and r.max_size == 16),
        (("shell", "exec", "--", "echo", "from", "smpctl"), 9, 0, smpshell.ExecuteRequest,
         lambda r: list(r.argv) == ["echo", "from", "smpctl"]),
        (("stat", "show", "smp_transport"), 2, 0, smpstat.GroupDataRequest, lambda r: r.name == "smp_transport"),
        (("enum", "single", "2"), 10, 2, smpenum.GroupIdRequest, lambda r: r.index == 2),
        (("enum", "details", "--group", "1", "--group", "8"), 10, 3, smpenum.GroupDetailsRequest,
         lambda r: [group_number(g) for g in (r.groups or ())] == [1, 8]),
    ]
    for args, group, command, cls, expected in checks:
        label = " ".join(args[:2])
        status, out, err = await run_smpctl(binary, "-v", "-c", sim.connection, "--json", *args)
        parse_json_document(f"smpctl -v {label}", status, out, err)
        frames = logged_requests(err, group, command)
        if check(f"smpctl -v {label}: the request frame is logged", bool(frames), err[-400:]):
            try:
                request = cls.loads(frames[-1])
                ok, detail = expected(request), repr(request)
            except Exception as e:  # noqa: BLE001
                ok, detail = False, f"{type(e).__name__}: {e}"
            check(f"smp decodes smpctl's {label} request with {cls.__name__}", ok, detail)

    client = SMPClient(PortUDPTransport(sim.port), "127.0.0.1", timeout_s=REQUEST_TIMEOUT_S)
    await asyncio.wait_for(client.connect(), 3 * REQUEST_TIMEOUT_S)
    try:
        read = await smpclient_request(client, ReadSetting(name="app/from-smpctl"), "settings read (set by smpctl)")
        if read is not None:
            check("smpclient settings read: the value smpctl set", read.val == value, read.val.hex())
        shell = await smpclient_request(client, Execute(argv=["echo", "from", "smpctl"]), "shell execute")
        if shell is not None:
            check("smpclient shell execute: echo's output", shell.o == "from smpctl\n" and shell.ret == 0, repr(shell))
    finally:
        await asyncio.wait_for(client.disconnect(), REQUEST_TIMEOUT_S)

    # Bodies that smp encodes, sent by smpctl's raw command; smp decodes smpctl's answers.
    raw_cases = [
        (WriteSetting(name="app/raw", val=b"\x01\x02raw"), "write", smpset.WriteSettingResponse, lambda r: True),
        (ReadSetting(name="app/raw"), "read", smpset.ReadSettingResponse, lambda r: r.val == b"\x01\x02raw"),
        (Execute(argv=["echo", "raw"]), "write", smpshell.ExecuteResponse, lambda r: r.o == "raw\n" and r.ret == 0),
        (ListOfGroups(), "read", smpstat.ListOfGroupsResponse, lambda r: "smp_transport" in r.stat_list),
        (ListSupportedGroups(), "read", smpenum.ListOfGroupsResponse, lambda r: 8 in [group_number(g) for g in r.groups]),
    ]
    for request, operation, response_cls, expected in raw_cases:
        frame = request.BYTES
        group, command = int.from_bytes(frame[4:6], "big"), frame[7]
        label = f"raw group {group} command {command} ({type(request).__name__} from smp)"
        doc = await smpctl_json(binary, sim, label, "raw", "--group", str(group), "--command", str(command),
                                f"--{operation}", "--cbor-hex", frame[8:].hex())
        if doc is None:
            continue
        try:
            response = response_cls(**cbor2.loads(bytes.fromhex(doc.get("response_hex", ""))))
            ok, detail = expected(response), repr(response)
        except Exception as e:  # noqa: BLE001
            ok, detail = False, f"{type(e).__name__}: {e}"
        check(f"smp's {response_cls.__name__} decodes smpctl's answer to {label}", ok, detail)


async def phase_groups(binary: str) -> None:
    async with Simulator(binary, "D") as sim:
        await phase_groups_smpclient_to_smpctl(binary, sim)
        await phase_groups_smpctl_to_smpclient(binary, sim)


async def main(binary: str) -> int:
    image = IMAGE_PATH.read_bytes()
    for name, phase in (("smpclient -> smpctl", lambda: phase_smpclient_to_smpctl(binary, image)),
                        ("smpctl -> smpclient", lambda: phase_smpctl_to_smpclient(binary)),
                        ("file system, both ways", lambda: phase_file_system(binary)),
                        ("statistics, settings, shell, enumeration, both ways", lambda: phase_groups(binary))):
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
