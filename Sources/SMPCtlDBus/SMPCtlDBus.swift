// Swift over libdbus-1: one owning thread, async method calls, signals, fd passing, exported objects.
