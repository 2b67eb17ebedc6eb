/*
 * The numbers of Amber's emulated devices: each is the index of the device's
 * record in snapshot images (docs/snapshot-format.md), so a number is never
 * reused. Pure header: the snapshot reader and amber-snap name records with
 * it without knowing the devices.
 */
#ifndef AMBER_VDEV_ID_H
#define AMBER_VDEV_ID_H

enum vdev_id {
	VDEV_UART = 1,	  /* 16550 COM1 */
	VDEV_PIT = 2,	  /* 8254 and port 0x61 */
	VDEV_PIC = 3,	  /* 8259A pair and the ELCR */
	VDEV_KBD = 4,	  /* 8042 */
	VDEV_CMOS = 5,	  /* MC146818 RTC and CMOS memory */
	VDEV_VGA = 6,	  /* VGA CRT controller and friends */
	VDEV_BOARD = 7,	  /* POST port, port 0x92, PCI configuration ports */
	VDEV_FWCFG = 8,	  /* QEMU's fw_cfg: selector and offset */
	VDEV_LAPIC = 9,	  /* every vCPU's local APIC */
	VDEV_IOAPIC = 10, /* 82093AA */
	VDEV_PM = 11,	  /* ACPI PM1 event/control registers and the PM timer */
	VDEV_ID_MAX,
};

/* "pic", or NULL for a number this Amber does not know. */
static inline const char *vdev_id_name(unsigned id)
{
	static const char *const names[VDEV_ID_MAX] = {
		[VDEV_UART] = "uart",	  [VDEV_PIT] = "pit",	  [VDEV_PIC] = "pic",
		[VDEV_KBD] = "kbd",	  [VDEV_CMOS] = "cmos",	  [VDEV_VGA] = "vga",
		[VDEV_BOARD] = "board",	  [VDEV_FWCFG] = "fwcfg", [VDEV_LAPIC] = "lapic",
		[VDEV_IOAPIC] = "ioapic", [VDEV_PM] = "pm",
	};

	return id < VDEV_ID_MAX ? names[id] : NULL;
}

#endif
