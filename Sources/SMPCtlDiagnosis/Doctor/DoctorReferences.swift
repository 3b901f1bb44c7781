// The public reports and documents each doctor check is based on. Kept as data so that the
// knowledge base (and `--json` output) can link to them by key.

/// A public report or document a check is based on.
public struct DoctorReference: Sendable, Equatable {
    public var key: String
    public var title: String
    public var url: String
}

/// The references, by key.
public enum DoctorReferences {
    public static let all: [DoctorReference] = [
        DoctorReference(
            key: "ncs-netcore-update",
            title: "sdk-nrf sysbuild/Kconfig.mcuboot and Kconfig.netcore: network core updates (SB_CONFIG_NETCORE_APP_UPDATE, MCUBOOT_UPDATEABLE_IMAGES, MCUBOOT_NRF53_MULTI_IMAGE_UPDATE, required when a secondary slot is off-chip; unsafe on revert without overwrite-only); modules/mcuboot/hooks/nrf53_hooks.c: image 1's primary slot is RAM",
            url: "https://github.com/nrfconnect/sdk-nrf/blob/main/sysbuild/Kconfig.mcuboot"),
        DoctorReference(
            key: "zephyr-99762",
            title: "Zephyr #99762: mcumgr image management incorrectly identifies the active slot when the slots are on different flash devices (regression in v4.3.0)",
            url: "https://github.com/zephyrproject-rtos/zephyr/issues/99762"),
        DoctorReference(
            key: "mcuboot-swap-move-max-size",
            title: "MCUboot swap_move.c app_max_size() and bootutil_area.c boot_trailer_sz(): swap using move keeps one sector free for the move and the image trailer at the end of each slot",
            url: "https://github.com/mcu-tools/mcuboot/blob/main/boot/bootutil/src/swap_move.c"),
        DoctorReference(
            key: "ncs-ext-flash-troubleshooting",
            title: "nRF Connect SDK: Using external flash memory partitions, Troubleshooting (BOOT_MAX_IMG_SECTORS=512 - too small?, __device_dts_ord link error)",
            url: "https://docs.nordicsemi.com/bundle/ncs-latest/page/nrf/config_and_build/bootloaders/bootloader_external_flash.html"),
        DoctorReference(
            key: "ncs-pm-external-flash",
            title: "nRF Connect SDK: Partition Manager, External flash memory partitions (nordic,pm-ext-flash, DEFAULT_DRIVER_KCONFIG)",
            url: "https://docs.nordicsemi.com/bundle/ncs-latest/page/nrf/scripts/partition_manager/partition_manager.html"),
        DoctorReference(
            key: "sdk-nrf-pr-9423",
            title: "sdk-nrf PR #9423: doc: Partition Manager and external devices (PM_EXTERNAL_FLASH_HAS_DRIVER, PM_OVERRIDE_EXTERNAL_DRIVER_CHECK)",
            url: "https://github.com/nrfconnect/sdk-nrf/pull/9423"),
        DoctorReference(
            key: "sdk-nrf-pr-8463",
            title: "sdk-nrf PR #8463: non-QSPI external flash needs CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK and the driver enabled in every image",
            url: "https://github.com/nrfconnect/sdk-nrf/pull/8463"),
        DoctorReference(
            key: "devzone-123633",
            title: "DevZone 123633: MCUboot + mcumgr FOTA using 2 MB SPI external flash (-19 Failed to open flash area)",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/123633/issue-with-mcuboot-mcumgr-fota-using-2-mb-spi-external-flash--19-failed-to-open-flash-area"),
        DoctorReference(
            key: "devzone-119044",
            title: "DevZone 119044: nrf5340 + QSPI NOR, mcuboot Failed to open flash area ID 1 (image 0 slot 1): -19",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/119044/nrf5340-qspi-nor-mcuboot-failed-to-open-flash-area-id-1-image-0-slot-1--19-cannot-continue"),
        DoctorReference(
            key: "devzone-104264",
            title: "DevZone 104264: NCS 2.4 adds QSPI (nrf_qspi_nor.c) when using SPI NOR for MCUboot, breaking the build; Image upload inspect failed: 5",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/104264/nrfconnect-2-4-0-added-qspi-for-when-using-spi-nor-for-mcuboot-breaking-build"),
        DoctorReference(
            key: "devzone-121133",
            title: "DevZone 121133: Unable to save image to slot 1 (external QSPI flash) on nRF52840, Hash not Found (8): partition sizes not identical",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/121133/unable-to-save-image-to-slot-1-external-qspi-flash-on-nrf52840"),
        DoctorReference(
            key: "devzone-81563",
            title: "DevZone 81563: DFU with MCUboot showing Failed reading sectors; BOOT_MAX_IMG_SECTORS=128 - too small?",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/81563/device-firmware-update-dfu-with-mcuboot-bootloader-showing-failed-reading-sectors-boot_max_img_sectors-128---too-small"),
        DoctorReference(
            key: "devzone-120384",
            title: "DevZone 120384: BLE OTA using external flash, BOOT_MAX_IMG_SECTORS=128 with a 952 kB slot",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/120384/ble-ota-using-external-flash-e-image-in-the-primary-slot-is-not-valid-e-unable-to-find-bootable-image"),
        DoctorReference(
            key: "devzone-128074",
            title: "DevZone 128074: nRF5340 MCUboot with external secondary slot: Cannot upgrade: slots have non-compatible sectors",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/128074/nrf5340-mcuboot-sdk-3-3-0-unable-to-change-pm_static-partition-sizes-stuck-on-jumping-to-the-first-image-slot"),
        DoctorReference(
            key: "devzone-122634",
            title: "DevZone 122634: nRF9160 MCUboot partitions must follow the flash/SPU alignment",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/122634/issue-with-booting-from-mcuboot-internal-flash-does-not-boot-but-after-waiting-for-long-time-boots-randomly-meanwhile-external-flash-setup-gives-flash-read-error-on-mcuboot"),
        DoctorReference(
            key: "devzone-107589",
            title: "DevZone 107589: a pm_static file taken from a sample (with mcuboot_primary_1 entries), then Failed to open flash area ID 1: -2",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/107589/flash-area-error-when-attempting-dfu-via-nrf-connect-app"),
        DoctorReference(
            key: "sdk-mcuboot-pr-206",
            title: "sdk-mcuboot PR #206: mcuboot_primary_1 ram-flash partition exists only for nRF5340 network-core updates",
            url: "https://github.com/nrfconnect/sdk-mcuboot/pull/206"),
        DoctorReference(
            key: "sdk-zephyr-pr-1010",
            title: "sdk-zephyr PR #1010: thingy53 DTS was missing nordic,pm-ext-flash, which prevented builds",
            url: "https://github.com/nrfconnect/sdk-zephyr/pull/1010"),
        DoctorReference(
            key: "devzone-117351",
            title: "DevZone 117351: MCUboot spi-nor external flash, undefined reference to __device_dts_ord_99",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/117351/mcuboot-spi-nor-external-flash"),
        DoctorReference(
            key: "devzone-122329",
            title: "DevZone 122329: sysbuild MCUboot can't resolve SPI NOR symbols (overlay not given to the MCUboot image)",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/122329/sysbuild-mcuboot-can-t-resolve-spi-nor-symbols-ncs-v2-7-0"),
        DoctorReference(
            key: "devzone-112849",
            title: "DevZone 112849: adding MCUboot to a PineTime (nRF52832) build fails with undefined reference to __device_dts_ord_88",
            url: "https://devzone.nordicsemi.com/f/nordic-q-a/112849/error-when-trying-to-add-mcu-boot-functionality-on-a-basic-blinky-example-using-zephry-nrf-connect"),
        DoctorReference(
            key: "mcuboot-imgtool",
            title: "MCUboot imgtool: an image needs the MCUboot header and TLVs (imgtool sign) before MCUboot or img_mgmt accept it",
            url: "https://docs.mcuboot.com/imgtool.html"),
        DoctorReference(
            key: "ncs-mcuboot-signing",
            title: "nRF Connect SDK: MCUboot signing keys (the default key is public and for development only)",
            url: "https://docs.nordicsemi.com/bundle/ncs-latest/page/nrf/app_dev/bootloaders_dfu/mcuboot_nsib/bootloader_signature_keys.html"),
        DoctorReference(
            key: "nrf5340-audio-ext-flash-conf",
            title: "sdk-nrf nrf5340_audio overlay-mcuboot_external_flash.conf: SPI_NOR_FLASH_LAYOUT_PAGE_SIZE=4096 and BOOT_MAX_IMG_SECTORS for an external slot",
            url: "https://github.com/nrfconnect/sdk-nrf/blob/v2.6.1/applications/nrf5340_audio/dfu/conf/overlay-mcuboot_external_flash.conf"),
        DoctorReference(
            key: "ncs-partition-manager",
            title: "nRF Connect SDK: Partition Manager (partitions.yml, pm_static.yml, partition addresses and sizes)",
            url: "https://docs.nordicsemi.com/bundle/ncs-latest/page/nrf/scripts/partition_manager/partition_manager.html"),
        DoctorReference(
            key: "zephyr-build-output",
            title: "Zephyr: Build system (CMake), the files a build writes (zephyr/.config, zephyr/zephyr.dts)",
            url: "https://docs.zephyrproject.org/latest/build/cmake/index.html"),
    ]

    /// The reference with a key.
    public static func reference(_ key: String) -> DoctorReference? { all.first { $0.key == key } }
}
