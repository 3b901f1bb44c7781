#!/usr/bin/env python3
"""Writes groups2-vectors.json: SMP packets of the file (8), Zephyr basic (63) and OS reset/info
messages, and device answers, encoded independently of smpctl with cbor2 (definite-length maps,
keys in the order smpctl sends them; Zephyr reads them in any order). Header layout from
shared/reference/smp-protocol.md: byte 0 = version << 3 | op, flags, big-endian length and
group, sequence, command.

Run from the package root: python3 Tests/Fixtures/generate-groups2-vectors.py
"""
import binascii
import hashlib
import json
import struct
import zlib

import cbor2


def packet(op, group, seq, command, body, version=1):
    cbor = cbor2.dumps(body)
    header = struct.pack(">BBHHBB", (version << 3) | op, 0, len(cbor), group, seq, command)
    return (header + cbor).hex()


READ, WRITE = 0, 2
data = bytes(range(16))
vectors = [
    ("fs-upload-first", packet(WRITE, 8, 1, 0, {"off": 0, "name": "/lfs/a.bin", "data": data, "len": 5000})),
    ("fs-upload-next", packet(WRITE, 8, 2, 0, {"off": 70000, "name": "/lfs/a.bin", "data": data})),
    ("fs-download", packet(READ, 8, 3, 0, {"off": 340, "name": "/lfs/a.bin"})),
    ("fs-status", packet(READ, 8, 4, 1, {"name": "/lfs/a.bin"})),
    ("fs-hash-sha256", packet(READ, 8, 5, 2, {"name": "/lfs/a.bin", "type": "sha256", "off": 0, "len": 4096})),
    ("fs-hash-default", packet(READ, 8, 6, 2, {"name": "/lfs/a.bin"})),
    ("fs-supported-hashes", packet(READ, 8, 7, 3, {})),
    ("fs-close", packet(WRITE, 8, 8, 4, {})),
    ("basic-erase-storage", packet(WRITE, 63, 9, 0, {})),
    ("os-reset-boot-mode", packet(WRITE, 0, 10, 5, {"force": 1, "boot_mode": 1})),
    ("os-info-all", packet(READ, 0, 11, 7, {"format": "a"})),
]
answers = [
    ("fs-upload-answer", cbor2.dumps({"off": 1432}).hex()),
    ("fs-offset-mismatch-answer", cbor2.dumps({"err": {"group": 8, "rc": 11}, "len": 1000}).hex()),
    ("fs-download-answer", cbor2.dumps({"off": 0, "data": data, "len": 5000}).hex()),
    ("fs-status-answer", cbor2.dumps({"len": 5000}).hex()),
    ("fs-hash-sha256-answer", cbor2.dumps({"type": "sha256", "len": 16, "output": hashlib.sha256(data).digest()}).hex()),
    ("fs-hash-crc32-answer", cbor2.dumps({"type": "crc32", "off": 4, "len": 12, "output": zlib.crc32(data[4:])}).hex()),
    ("fs-supported-answer", cbor2.dumps({"types": {"crc32": {"format": 0, "size": 4}, "sha256": {"format": 1, "size": 32}}}).hex()),
]
out = {
    "generator": "Tests/Fixtures/generate-groups2-vectors.py (cbor2 %s)" % getattr(cbor2, "__version__", "installed"),
    "data_hex": data.hex(),
    "sha256_hex": hashlib.sha256(data).hexdigest(),
    "crc32_of_data_from_4": zlib.crc32(data[4:]),
    "crc32_check_123456789": zlib.crc32(b"123456789"),
    "vectors": [{"name": n, "hex": h} for n, h in vectors + answers],
}
with open("Tests/Fixtures/groups2-vectors.json", "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
