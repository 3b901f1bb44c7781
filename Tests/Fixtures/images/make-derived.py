import struct, zipfile, json, os
d = open('ecdsa-p256.signed.bin','rb').read()
t = bytearray(d); t[0x200 + 100] ^= 0x01
open('tampered.signed.bin','wb').write(bytes(t))
open('truncated.signed.bin','wb').write(d[:4000])
open('zephyr.bin','wb').write(open('app-plain.bin','rb').read())
# A 64-byte ELF32 little-endian ARM executable header followed by zeros (no sections).
h = b'\x7fELF' + bytes([1, 1, 1, 0]) + bytes(8)
h += struct.pack('<HHIIIIIHHHHHH', 2, 40, 1, 0x201, 52, 0, 0x05000200, 52, 32, 0, 40, 0, 0)
open('zephyr.elf','wb').write(h + bytes(192))
app = open('ed25519.signed.bin','rb').read()
net = open('ecdsa-p256.signed.bin','rb').read()
manifest = {"format-version": 0, "time": 1732528800, "files": [
  {"type": "application", "board": "nrf5340dk_nrf5340_cpuapp", "soc": "nRF5340", "load_address": 0xc200,
   "image_index": "0", "slot_index_primary": "1", "slot_index_secondary": "2", "version_MCUBOOT": "1.2.3",
   "size": len(app), "file": "app_update.bin", "modtime": 1732528800},
  {"type": "application", "board": "nrf5340dk_nrf5340_cpunet", "soc": "nRF5340", "load_address": 0x1008800,
   "image_index": "1", "slot_index_primary": "3", "slot_index_secondary": "4", "version_MCUBOOT": "1.2.3",
   "size": len(net), "file": "net_core_app_update.bin", "modtime": 1732528800}], "name": "dfu_application"}
with zipfile.ZipFile('dfu_application.zip', 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for name, data in [('app_update.bin', app), ('net_core_app_update.bin', net), ('manifest.json', json.dumps(manifest, indent=4).encode())]:
        info = zipfile.ZipInfo(name, date_time=(2024, 11, 25, 10, 0, 0)); info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
