/*
 * The firmware tables Amber writes into every VM's RAM at creation, where a
 * PC BIOS leaves them: ACPI (RSDP, RSDT, XSDT, FADT, FACS, MADT, DSDT) and the
 * Intel MP table, all describing the platform of vmm/platform.h. Pure: the
 * builder fills a buffer, so host unit tests check and parse the result.
 */
#ifndef AMBER_FWTABLES_H
#define AMBER_FWTABLES_H

#include "kernel/types.h"
#include "vmm/platform.h"

/* The builder's buffer is guest memory [PLAT_BIOS_AREA, PLAT_BIOS_AREA_END). */
#define FWTABLES_SIZE (PLAT_BIOS_AREA_END - PLAT_BIOS_AREA)

/* Where the builder put things, as guest-physical addresses. */
struct fwtables_layout {
	u64 rsdp, rsdt, xsdt, fadt, facs, madt, dsdt;
	u32 dsdt_len;
	u64 mp_floating, mp_config;
};

/* Writes the tables for a VM with `ncpus` vCPUs (LAPIC ids 0..ncpus-1, vCPU 0
 * the bootstrap processor) into area[FWTABLES_SIZE], zeroing the rest of it.
 * Returns 0 with *where filled (may be NULL), or -EINVAL for an ncpus outside
 * 1..VM_MAX_VCPUS. */
int fwtables_build(u8 *area, int ncpus, struct fwtables_layout *where);

#endif
