#!/usr/bin/env python3
"""Writes the seed corpus Fuzz/Corpus/<target>/ from the golden vectors (Tests/Fixtures/*.json,
the same files as /work/shared/reference/test-vectors/) and the fixture files.

Run from anywhere: python3 Fuzz/make-corpus.py. It replaces the seed folders; files are named by
content so a re-run gives the same names. Only the Python standard library is used.
"""
import binascii
import hashlib
import io
import json
import pathlib
import shutil
import struct
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "Tests" / "Fixtures"
OUT = ROOT / "Fuzz" / "Corpus"


def vectors(name):
    return json.loads((FIX / f"{name}.json").read_text())["vectors"]


def packets():
    out = []
    for name in ["os-echo", "img-mgmt", "errors"]:
        for v in vectors(name):
            if "hex" in v:
                out.append(bytes.fromhex(v["hex"]))
    return out


def cbor_bodies():
    out = []
    for name in ["os-echo", "img-mgmt", "errors"]:
        for v in vectors(name):
            if v.get("cbor_hex"):
                out.append(bytes.fromhex(v["cbor_hex"]))
    return out


def header(op, group, seq, cmd, body, version=1):
    return bytes([version << 3 | op, 0]) + struct.pack(">HHBB", len(body), group, seq, cmd) + body


def cbor_text(s):
    b = s.encode()
    assert len(b) < 24
    return bytes([0x60 | len(b)]) + b


def cbor_map(pairs):
    """A tiny definite-length CBOR map encoder for seeds (text keys; int, text, bytes, bool values)."""
    out = bytearray([0xA0 | len(pairs)])
    for k, v in pairs:
        out += cbor_text(k)
        if isinstance(v, bool):
            out.append(0xF5 if v else 0xF4)
        elif isinstance(v, int):
            if v < 24:
                out.append(v)
            elif v < 256:
                out += bytes([0x18, v])
            else:
                out += bytes([0x19]) + struct.pack(">H", v)
        elif isinstance(v, str):
            out += cbor_text(v)
        elif isinstance(v, bytes):
            if len(v) < 24:
                out.append(0x40 | len(v))
            elif len(v) < 256:
                out += bytes([0x58, len(v)])
            else:
                out += bytes([0x59]) + struct.pack(">H", len(v))
            out += v
    return bytes(out)


def write(target, seeds):
    folder = OUT / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for seed in seeds:
        (folder / hashlib.sha1(seed).hexdigest()[:16]).write_bytes(seed)


def main():
    pk = packets()
    bodies = cbor_bodies()
    extra_cbor = [
        bytes.fromhex("c11a514b67b0"),  # tag 1 (epoch time)
        bytes.fromhex("f93c00"), bytes.fromhex("fa47c35000"), bytes.fromhex("fb3ff199999999999a"),  # floats
        bytes.fromhex("5f42010243030405ff"),  # indefinite byte string
        bytes.fromhex("7f657374726561646d696e67ff"),  # indefinite text string
        bytes.fromhex("9f018202039f0405ffff"),  # nested indefinite arrays
        bytes.fromhex("1bffffffffffffffff"), bytes.fromhex("3bffffffffffffffff"),  # integer extremes
        bytes.fromhex("f8ff"), bytes.fromhex("f7"),  # simple values
    ]
    write("cbor", bodies + extra_cbor)
    write("smp", pk)

    serial = []
    for v in vectors("serial-framing"):
        for key in ["frames_smp_lib_hex", "frames_zephyr_style_hex"]:
            frames = b"".join(bytes.fromhex(h) for h in v.get(key, []))
            if frames:
                serial.append(b"\x00\x10" + frames)
                serial.append(b"\x00\x05" + b"uart:~$ console text\r\n" + frames)
        if v.get("smp_packet_hex"):
            serial.append(bytes([0x80 | 60]) + bytes.fromhex(v["smp_packet_hex"]))
    write("serial", sorted(set(serial)))

    reassembler = []
    for p in pk:
        # limit (4 bytes), server limit present + 4 bytes, reassembly on, then fragments of 20.
        prefix = struct.pack(">I", 600) + b"\x01" + struct.pack(">I", 600) + b"\x01"
        frags = b"".join(bytes([len(p[i:i + 20])]) + p[i:i + 20] for i in range(0, len(p), 20))
        reassembler.append(prefix + frags)
    write("reassembler", reassembler)

    images = FIX / "images"
    image_seeds = [FIX / "test-image.bin"] + [images / n for n in [
        "ecdsa-p256.signed.bin", "ed25519.signed.bin", "rsa-2048.signed.bin", "sha512.signed.bin",
        "truncated.signed.bin", "wrong-header-size.signed.bin", "zephyr.elf"]]
    hex_head = (images / "zephyr.signed.hex").read_bytes()[:2048]
    write("image", [p.read_bytes() for p in image_seeds] + [hex_head])

    small_zip = io.BytesIO()
    with zipfile.ZipFile(small_zip, "w") as z:
        manifest = {"format-version": 1, "files": [{"type": "application", "board": "nrf52840dk",
            "soc": "nRF52840", "load_address": 0xC200, "image_index": "0", "slot_index_primary": "1",
            "slot_index_secondary": "2", "version_MCUBOOT": "1.2.3", "size": 4770, "file": "app_update.bin"}],
            "name": "app"}
        z.writestr("manifest.json", json.dumps(manifest), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("app_update.bin", (FIX / "test-image.bin").read_bytes()[:512], compress_type=zipfile.ZIP_STORED)
    write("archive", [(images / "dfu_application.zip").read_bytes(), small_zip.getvalue()])

    builds = FIX / "builds"
    yaml = {p.read_bytes() for p in builds.glob("*/build/partitions.yml")}
    yaml |= {p.read_bytes() for p in builds.glob("*/build/domains.yaml")}
    yaml |= {p.read_bytes() for p in builds.glob("*/pm_static*.yml")}
    write("yaml", sorted(yaml))
    write("devicetree", sorted({p.read_bytes() for p in builds.glob("*/build/**/zephyr.dts")}))
    write("kconfig", sorted({p.read_bytes() for p in builds.glob("*/build/**/.config")})[:12])

    # The simulator: two configuration bytes, then requests.
    image = (FIX / "test-image.bin").read_bytes()
    sha = hashlib.sha256(image).digest()
    requests = [
        header(2, 0, 1, 0, cbor_map([("d", "hello")])),
        header(0, 0, 2, 6, b"\xa0"),
        header(0, 0, 3, 7, cbor_map([("format", "a")])),
        header(0, 0, 4, 8, b"\xa0"),
        header(0, 0, 5, 2, b"\xa0"),
        header(2, 0, 6, 4, cbor_map([("datetime", "2026-01-01T00:00:00")])),
        header(0, 0, 7, 4, b"\xa0"),
        header(0, 1, 8, 0, b"\xa0"),
        header(0, 1, 9, 6, b"\xa0"),
    ]
    upload = []
    chunk = 1024
    for seq, off in enumerate(range(0, len(image), chunk)):
        fields = [("off", off), ("data", image[off:off + chunk])]
        if off == 0:
            fields += [("len", len(image)), ("sha", sha), ("image", 0)]
        upload.append(header(2, 1, 20 + seq, 1, cbor_map(fields)))
    image_hash = bytes.fromhex(json.loads((FIX / "mcuboot-image.json").read_text())["image_hash_sha256_tlv_0x10"])
    test = header(2, 1, 40, 0, cbor_map([("hash", image_hash), ("confirm", False)]))
    reset = header(2, 0, 41, 5, b"\xa0")
    erase = header(2, 1, 42, 5, cbor_map([("slot", 1)]))
    sim = [
        b"\x00\x00" + b"".join(requests),
        b"\x00\x80" + b"".join(requests[:4]),
        b"\x00\x00" + b"".join(upload) + test + reset + requests[7],
        b"\x03\x00" + b"".join(upload[:2]) + erase,
        b"\x40\x00" + b"".join(upload[:3]),
    ] + [b"\x00\x00" + p for p in pk]
    write("simulator", sim)


if __name__ == "__main__":
    main()
