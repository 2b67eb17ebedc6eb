# The local APICs and the IOAPIC (vmm/dev_lapic.c, vmm/dev_ioapic.c) through
# their MMIO pages, MSRs, the intr.h calls and their records.
UNIT_TESTS += apic
apic_SRCS := tests/unit/test_apic.c vmm/dev_lapic.c vmm/lapic_regs.c vmm/dev_ioapic.c vmm/mmio.c vmm/insn.c \
             kernel/lib.c kernel/format.c
