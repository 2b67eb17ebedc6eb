/*
 * The guest memory map (vmm/memmap.h): the VM's RAM from address 0 with the
 * platform's reserved ranges (vmm/platform.h) cut out and listed as reserved.
 * Pure: the loader, fw_cfg and the host unit tests call it.
 */
#include "vmm/memmap.h"
#include "vmm/platform.h"

/* The reserved ranges, in address order. The LAPIC page is listed whether or
 * not the guest moved its APIC base: this is where firmware reports it. */
static const struct e820_entry reserved[] = {
	{ PLAT_EBDA, PLAT_BIOS_AREA_END - PLAT_EBDA, E820_RESERVED },
	{ PLAT_IOAPIC_BASE, 0x1000, E820_RESERVED },
	{ PLAT_LAPIC_BASE, 0x1000, E820_RESERVED },
};

int memmap_build(u64 mem, struct e820_entry *out)
{
	u64 at = 0; /* RAM below `at` is already listed or cut */
	int n = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(reserved); i++) {
		const struct e820_entry *r = &reserved[i];

		if (at < r->addr && at < mem)
			out[n++] = (struct e820_entry){ at, MIN(mem, r->addr) - at, E820_RAM };
		out[n++] = *r;
		at = r->addr + r->len;
	}
	if (at < mem)
		out[n++] = (struct e820_entry){ at, mem - at, E820_RAM };
	return n;
}
