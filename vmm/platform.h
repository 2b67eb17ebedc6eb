/*
 * The fixed addresses of the small PC every VM gets, in one place: the
 * devices that answer there and the firmware tables that describe them
 * (ACPI, MP table, memory map) read the same constants, so the two cannot
 * disagree. Pure header.
 */
#ifndef AMBER_PLATFORM_H
#define AMBER_PLATFORM_H

/* ---- guest-physical memory ------------------------------------------------ */
#define PLAT_EBDA 0x9FC00ULL	  /* [EBDA, 1 MiB): reserved, not RAM to the guest */
#define PLAT_BIOS_AREA 0xE0000ULL /* 0xE0000-0xFFFFF: firmware tables (RSDP, MP) */
#define PLAT_BIOS_AREA_END 0x100000ULL
#define PLAT_IOAPIC_BASE 0xFEC00000ULL /* one 4 KiB page */
#define PLAT_LAPIC_BASE 0xFEE00000ULL  /* IA32_APIC_BASE at reset */

/* ---- interrupts ----------------------------------------------------------- */
/* The IOAPIC's id: past every LAPIC id (0..VM_MAX_VCPUS-1), as firmware
 * numbers them, though the two are separate spaces on xAPIC systems. */
#define PLAT_IOAPIC_ID VM_MAX_VCPUS
#define PLAT_IRQ_PIT 0 /* ISA IRQ0, wired to IOAPIC GSI 2 (MADT override) */
#define PLAT_GSI_PIT 2
#define PLAT_IRQ_UART 4
#define PLAT_IRQ_RTC 8
#define PLAT_IRQ_SCI 9 /* ACPI SCI: level, active high (MADT override) */

/* ---- I/O ports ------------------------------------------------------------ */
/* ACPI fixed hardware, the PIIX4 layout QEMU's guests expect (a guest that
 * powers off with outw(0x604, 0x2000) under QEMU does so here too).
 * ACPI 6.4 4.8 "ACPI Hardware Model" and 5.2.9 "Fixed ACPI Description Table". */
#define PLAT_PM_BASE 0x600
#define PLAT_PM1A_EVT (PLAT_PM_BASE + 0) /* PM1a_STS (2 bytes), PM1a_EN (2) */
#define PLAT_PM1A_CNT (PLAT_PM_BASE + 4) /* PM1a_CNT, 2 bytes */
#define PLAT_PM_TMR (PLAT_PM_BASE + 8)	 /* PM timer, 4 bytes, 3.579545 MHz */
#define PLAT_PM_LEN 12
#define PLAT_SLP_TYP_S5 0      /* the \_S5 package's value */
#define PLAT_RESET_PORT 0xCF9  /* FADT RESET_REG (system I/O) */
#define PLAT_RESET_VALUE 0x06  /* FADT RESET_VALUE: hard reset */
#define PLAT_CMOS_CENTURY 0x32 /* FADT CENTURY: the RTC's century byte */
#define PLAT_FW_CFG_PORT 0x510 /* fw_cfg selector; 0x511 data */

/* ---- firmware tables and time ------------------------------------------- */
/* What the version registers read, as the MP table states them: an xAPIC
 * (SDM Vol. 3A 11.4.8 "Local APIC Version Register") and the 82093AA. */
#define PLAT_LAPIC_VERSION 0x14
#define PLAT_IOAPIC_VERSION 0x11
/* The local APIC timer's input clock ("bus" or core crystal clock): CPUID
 * leaves 0x15 (ECX), 0x16 (ECX, in MHz) and 0x40000010 (EBX, in kHz) report
 * it, and Linux takes the 0x15 crystal as the APIC timer's rate, so the LAPIC
 * timer must count at exactly this rate. 1 GHz, as KVM's: a whole number of
 * MHz (leaf 0x16), 1 ns resolution, and 4.3 s before a 32-bit count at
 * divide 1 runs out (divide 128: 9 minutes). */
#define PLAT_APIC_BUS_HZ 1000000000ULL

#endif
