// The embedded device simulator: an SMP server with flash slots and MCUboot semantics.
