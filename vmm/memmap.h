/*
 * The guest-physical memory map of a VM, in the shape of the BIOS E820 list:
 * one function produces it, and every way the guest learns it (the Multiboot
 * mmap, fw_cfg's etc/e820, the Linux boot protocol's e820 table) copies the
 * same ranges. Pure: host unit tests build it.
 * ACPI 6.4 15 "System Address Map Interfaces".
 */
#ifndef AMBER_MEMMAP_H
#define AMBER_MEMMAP_H

#include "kernel/types.h"

/* ACPI 6.4 15.1 "Address Range Types" (Table 15.1). */
#define E820_RAM 1
#define E820_RESERVED 2

struct e820_entry {
	u64 addr, len;
	u32 type;
} __packed;
_Static_assert(sizeof(struct e820_entry) == 20, "an E820 entry is 20 bytes");

/* At most this many ranges: RAM cut by the three reserved ranges. */
#define MEMMAP_MAX 8

/* Fills out[MEMMAP_MAX] with the map of a VM whose RAM is [0, mem): RAM with
 * the reserved ranges cut out ([PLAT_EBDA, 1 MiB): EBDA, the VGA window and
 * the firmware tables; the IOAPIC and local APIC pages), and the reserved
 * ranges themselves whether or not RAM lies under them, in address order,
 * none overlapping. Returns the number of entries. */
int memmap_build(u64 mem, struct e820_entry *out);

#endif
