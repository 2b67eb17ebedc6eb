/*
 * ACPI table discovery: RSDP (from the Multiboot 2 tags or the BIOS area), the
 * RSDT/XSDT, the MADT's CPU list, MCFG's ECAM base, FADT power-off.
 * Reference: ACPI 6.4 5.2 "ACPI System Description Tables".
 */
#ifndef AMBER_ACPI_H
#define AMBER_ACPI_H

#include "kernel/types.h"

struct acpi_sdt_header {
	char signature[4];
	u32 length;
	u8 revision;
	u8 checksum;
	char oem_id[6];
	char oem_table_id[8];
	u32 oem_revision;
	u32 creator_id;
	u32 creator_revision;
} __packed;
_Static_assert(sizeof(struct acpi_sdt_header) == 36, "ACPI header is 36 bytes");

#define ACPI_MAX_TABLES 32
#define ACPI_MAX_CPUS 64

struct acpi_info {
	u64 rsdp_phys;
	bool rsdp_from_loader; /* the loader's copy (Multiboot 2 tag 14/15) */
	u8 revision;
	int table_count;
	struct {
		char sig[5];
		u64 phys;
		u32 length;
		char oem_id[7];
	} tables[ACPI_MAX_TABLES];
	int cpu_count;
	u32 cpu_apic_ids[ACPI_MAX_CPUS];
	u64 lapic_phys;
	u64 ecam_base; /* 0: no MCFG */
	u8 ecam_bus_start, ecam_bus_end;
	/* Power-off: PM1a/PM1b control ports from the FADT, SLP_TYP from \_S5. */
	u16 pm1a_cnt, pm1b_cnt;
	u16 slp_typa, slp_typb;
	bool s5_found;
	u16 reset_port; /* FADT reset register when it is an I/O port */
	u8 reset_value;
	/* Added by the hardware-discovery work (kernel/acpi_parse.c). */
	u64 dsdt_phys;
	u32 smi_cmd;	/* FADT SMI_CMD port; 0: the machine is always in ACPI mode */
	u8 acpi_enable; /* value written to SMI_CMD to enter ACPI mode */
	u8 fadt_revision;
	int ioapic_count;
	u64 ioapic_phys;    /* first I/O APIC */
	int skipped_tables; /* refused: bad checksum, absurd length, unreadable */
};

extern struct acpi_info acpi;

void acpi_init(void);
/* Parses the tables reachable from an RSDP already in memory. Pure apart from
 * reading memory through phys_to_virt; the unit tests hand it captured tables. */
int acpi_parse(u64 rsdp_phys, struct acpi_info *out);
const struct acpi_sdt_header *acpi_find_table(const char sig[4]);
/* Tries ACPI S5; returns only if the machine did not power off. */
void acpi_poweroff(void);
/* Resets the machine: FADT reset register (I/O), 8042 pulse, triple fault. */
__noreturn void acpi_reboot(void);
/* One line saying how acpi_poweroff() will try, for the `acpi` command. */
void acpi_describe_poweroff(char *buf, size_t len);

/* Helpers of the pure parser (kernel/acpi_parse.c), exported for the tests. */
#define ACPI_MAX_TABLE_LEN (16u << 20) /* larger is taken as a corrupt length */
/* Returns a pointer through which len bytes of physical memory at phys can be
 * read, or NULL. The kernel maps (kernel/acpi.c); the unit tests supply it. */
const void *acpi_map(u64 phys, u64 len);
bool acpi_checksum_ok(const void *p, size_t len);
/* Scans [phys, phys+len) on 16-byte boundaries for a valid RSDP; 0 if none.
 * ACPI 6.4 5.2.5.1 "Finding the RSDP on IA-PC Systems". */
u64 acpi_scan_rsdp(u64 phys, u64 len);
/* Finds Name(_S5_, Package(){a, b, ...}) in AML and decodes SLP_TYPa/b.
 * Returns 0 or -ENOENT. */
int acpi_find_s5(const u8 *aml, size_t len, u16 *slp_typa, u16 *slp_typb);

#endif
