# The platform devices that keep time or interrupt on their own: the RTC, the
# ACPI PM timer and PM1 registers, the 16550's interrupts, through the device
# table (vmm/vdev.c) with the 8259A pair to see their lines.
UNIT_TESTS += platform
platform_SRCS := tests/unit/test_platform.c vmm/vdev.c vmm/dev_uart.c vmm/dev_pit.c \
                 vmm/dev_pic.c vmm/dev_kbd.c vmm/dev_cmos.c vmm/dev_vga.c vmm/dev_board.c \
                 vmm/dev_lapic.c vmm/lapic_regs.c vmm/dev_ioapic.c vmm/mmio.c vmm/insn.c \
                 vmm/dev_fwcfg.c vmm/memmap.c \
                 vmm/dev_pm.c kernel/lib.c kernel/format.c
