# The MMIO bus (vmm/mmio.c) with the decoder: every MOV form against a device.
UNIT_TESTS += mmio
mmio_SRCS := tests/unit/test_mmio.c vmm/mmio.c vmm/insn.c
