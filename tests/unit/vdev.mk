# The emulated devices of the VMM through their table (vmm/vdev.c): COM1, the
# 8254 and port 0x61, the 8259A pair, the 8042, CMOS, VGA, the board's ports, fw_cfg,
# and every device's snapshot record.
UNIT_TESTS += vdev
vdev_SRCS := tests/unit/test_vdev.c vmm/vdev.c vmm/dev_uart.c vmm/dev_pit.c vmm/dev_pic.c \
             vmm/dev_kbd.c vmm/dev_cmos.c vmm/dev_lapic.c vmm/lapic_regs.c vmm/dev_ioapic.c vmm/mmio.c vmm/insn.c vmm/dev_vga.c vmm/dev_board.c vmm/dev_fwcfg.c vmm/memmap.c vmm/dev_pm.c kernel/lib.c kernel/format.c \
             snapshot/format.c kernel/crc32c.c
