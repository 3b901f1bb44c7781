// BlueZ proxies, scanning and the BLE SMP transport.
