# The emulated devices of the VMM: COM1 (vmm/dev_uart.c) and the legacy PC
# platform (vmm/dev_legacy.c: PIT against the guest TSC, port 0x61, 8042, CMOS).
UNIT_TESTS += vdev
vdev_SRCS := tests/unit/test_vdev.c vmm/dev_uart.c vmm/dev_legacy.c kernel/lib.c kernel/format.c
