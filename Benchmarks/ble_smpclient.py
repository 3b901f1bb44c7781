#!/usr/bin/env python3
"""The baseline client of the BLE benchmark: smpclient with bleak, run inside the BLE VM.

    ble_smpclient.py NAME echo
    ble_smpclient.py NAME upload IMAGE

Connects to the peripheral advertising NAME through bluetoothd (bleak's BlueZ backend), then
either sends one echo or uploads IMAGE (image 0, which the device writes to its secondary slot), and prints one JSON line with the phases it
timed itself: connect_seconds (scan, connect, services, MTU, notify, smpclient's parameter read),
echo_seconds (one echo request's round trip), upload_seconds (smpclient's upload loop). The whole
process is timed by the caller (scripts/ble-vm/bench.sh).
"""

import time

IMPORTED_AT = time.time()  # the caller's start time and this tell the interpreter's start-up apart

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from bleak.backends.bluezdbus.manager import BlueZManager  # noqa: E402
from smpclient import SMPClient
from smpclient.requests.os_management import EchoWrite
from smpclient.transport.ble import SMPBLETransport


# smpclient's BLE transport has no adapter option and bleak scans with the first powered adapter,
# hci0, which is the peripheral's own: make hci1 (the central of the VM) bleak's default instead.
BlueZManager.get_default_adapter = lambda self: "/org/bluez/hci1"  # type: ignore[method-assign]


async def run(name: str, mode: str, image_path: str | None) -> dict[str, float | int | str]:
    started = time.monotonic()
    # btvirt sends one advertising report per scan start (bluez-vm-notes.md): a scan that missed it
    # finds nothing, so try up to three 10-second connects, as smpctl rescans within its discovery.
    attempts = 0
    while True:
        attempts += 1
        client = SMPClient(SMPBLETransport(), name, timeout_s=30.0)
        try:
            await client.connect(10.0)
            break
        except Exception:  # noqa: BLE001
            if attempts >= 3:
                raise
    connected = time.monotonic()
    result: dict[str, float | int | str] = {
        "started_epoch": IMPORTED_AT, "connect_seconds": connected - started, "connect_attempts": attempts}
    try:
        await client.request(EchoWrite(d="ping"))
        result["echo_seconds"] = time.monotonic() - connected
        if mode == "upload" and image_path is not None:
            with open(image_path, "rb") as f:
                image = f.read()
            upload_start = time.monotonic()
            last = 0
            async for offset in client.upload(image):
                last = offset
            result["upload_seconds"] = time.monotonic() - upload_start
            result["uploaded_bytes"] = last
    finally:
        before = time.monotonic()
        await client.disconnect()
        result["disconnect_seconds"] = time.monotonic() - before
    result["finished_epoch"] = time.time()
    return result


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[2] not in ("echo", "upload") or (sys.argv[2] == "upload" and len(sys.argv) < 4):
        print(__doc__, file=sys.stderr)
        return 2
    image = sys.argv[3] if len(sys.argv) > 3 else None
    logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)8.0f ms %(name)s %(message)s", stream=sys.stderr)
    try:
        result = asyncio.run(run(sys.argv[1], sys.argv[2], image))
    except Exception as error:  # noqa: BLE001 - a failed run is a result of the benchmark
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
