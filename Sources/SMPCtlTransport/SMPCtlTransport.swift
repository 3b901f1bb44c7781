// Transports: one protocol, UDP, serial and in-process implementations.
