# Builds the unsigned inputs for the image fixtures (deterministic).
import struct, random
rnd = random.Random(5)
def app(prefix_zero=0, size=6000):
    # A Cortex-M-like application: vector table (SP in RAM, odd reset handler) then code-ish bytes.
    vt = struct.pack('<II', 0x20008000, 0x00000A01 + 0x200) + b''.join(struct.pack('<I', 0x00000B01 + 4*i) for i in range(14))
    body = bytes(rnd.randrange(256) for _ in range(size - len(vt)))
    return b'\0' * prefix_zero + vt + body
open('app-rom-offset.bin', 'wb').write(app(prefix_zero=0x200))   # built with CONFIG_ROM_START_OFFSET=0x200
open('app-plain.bin', 'wb').write(app())                         # no ROM offset: needs --pad-header
