// The MCUboot image format: header, TLVs, hashes and signature checks.
