# INIT and STARTUP IPIs acted on (vmm/startup.c) with the real LAPICs
# (vmm/dev_lapic.c) and a recording backend: the INIT and STARTUP states,
# wait-for-SIPI, an INIT to the BSP as a reset.
UNIT_TESTS += startup
startup_SRCS := tests/unit/test_startup.c vmm/startup.c vmm/dev_lapic.c vmm/lapic_regs.c \
                vmm/dev_ioapic.c vmm/mmio.c vmm/insn.c kernel/lib.c kernel/format.c
