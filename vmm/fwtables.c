/*
 * Builds each VM's ACPI tables and MP table (vmm/fwtables.h) into a buffer that
 * becomes guest memory 0xE0000-0xFFFFF: the ACPI tables from 0xE0000, the
 * RSDP and the MP floating pointer at 0xF0000, where an OS scans for them.
 * Every value that names hardware comes from vmm/platform.h, so the tables
 * and the devices cannot disagree. Pure: host context and host unit tests.
 * ACPI 6.4 5.2 "ACPI System Description Tables"; Intel MultiProcessor
 * Specification 1.4, 4 "MP Configuration Table".
 */
#include "vmm/fwtables.h"
#include "kernel/acpi.h"
#include "kernel/lib.h"
#include "vmm/vmm.h"

#define OEM_ID "AMBER "		/* 6 bytes */
#define OEM_TABLE_ID "AMBERVM " /* 8 bytes */
#define CREATOR_ID "AMBR"
#define RSDP_OFFSET 0x10000 /* 0xF0000: inside the MP spec's F segment too */

/* ACPI 6.4 5.2.5.3 "Root System Description Pointer (RSDP) Structure". */
struct rsdp {
	char signature[8];
	u8 checksum; /* over the first 20 bytes */
	char oem_id[6];
	u8 revision;
	u32 rsdt;
	u32 length;
	u64 xsdt;
	u8 ext_checksum; /* over all 36 bytes */
	u8 reserved[3];
} __packed;
_Static_assert(sizeof(struct rsdp) == 36, "RSDP");

/* ACPI 6.4 5.2.3.2 "Generic Address Structure (GAS)". */
struct gas {
	u8 space_id, bit_width, bit_offset, access_size;
	u64 address;
} __packed;
_Static_assert(sizeof(struct gas) == 12, "GAS");
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* ACPI 6.4 5.2.9 "Fixed ACPI Description Table (FADT)", revision 6. */
struct fadt {
	struct acpi_sdt_header hdr;
	u32 firmware_ctrl, dsdt;
	u8 reserved0, preferred_pm_profile;
	u16 sci_int;
	u32 smi_cmd;
	u8 acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	u32 pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
	u32 gpe0_blk, gpe1_blk;
	u8 pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	u8 gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	u16 p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	u8 duty_offset, duty_width, day_alrm, mon_alrm, century;
	u16 iapc_boot_arch;
	u8 reserved1;
	u32 flags;
	struct gas reset_reg;
	u8 reset_value;
	u16 arm_boot_arch;
	u8 minor_version;
	u64 x_firmware_ctrl, x_dsdt;
	struct gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct gas sleep_control_reg, sleep_status_reg;
	u64 hypervisor_vendor;
} __packed;
_Static_assert(offsetof(struct fadt, sci_int) == 46, "FADT SCI_INT");
_Static_assert(offsetof(struct fadt, iapc_boot_arch) == 109, "FADT IAPC_BOOT_ARCH");
_Static_assert(offsetof(struct fadt, reset_reg) == 116, "FADT RESET_REG");
_Static_assert(offsetof(struct fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct fadt, x_pm_tmr_blk) == 208, "FADT X_PM_TMR_BLK");
_Static_assert(sizeof(struct fadt) == 276, "FADT revision 6 is 276 bytes");

/* Table 5.10 "Fixed ACPI Description Table Fixed Feature Flags". */
#define FADT_WBINVD BIT(0)
#define FADT_PROC_C1 BIT(2)
#define FADT_PWR_BUTTON BIT(4) /* no fixed-feature power button */
#define FADT_SLP_BUTTON BIT(5)
#define FADT_FIX_RTC BIT(6) /* no RTC_STS in PM1 */
#define FADT_RESET_REG_SUP BIT(10)
/* 5.2.9.3 "IA-PC Boot Architecture Flags". */
#define IAPC_LEGACY_DEVICES BIT(0)
#define IAPC_8042 BIT(1)
#define C2_NOT_SUPPORTED 101  /* P_LVL2_LAT above 100 */
#define C3_NOT_SUPPORTED 1001 /* P_LVL3_LAT above 1000 */

/* ACPI 6.4 5.2.10 "Firmware ACPI Control Structure (FACS)". */
struct facs {
	char signature[4];
	u32 length, hardware_signature, waking_vector, global_lock, flags;
	u64 x_waking_vector;
	u8 version, reserved[3];
	u32 ospm_flags;
	u8 reserved2[24];
} __packed;
_Static_assert(sizeof(struct facs) == 64, "FACS");

/* ACPI 6.4 5.2.12 "Multiple APIC Description Table (MADT)" and its entries. */
struct madt {
	struct acpi_sdt_header hdr;
	u32 lapic_address, flags;
} __packed;
#define MADT_PCAT_COMPAT BIT(0) /* the 8259A pair is there too */
struct madt_lapic {		/* 5.2.12.2 "Processor Local APIC Structure" */
	u8 type, length, processor_uid, apic_id;
	u32 flags;
} __packed;
struct madt_ioapic { /* 5.2.12.3 "I/O APIC Structure" */
	u8 type, length, id, reserved;
	u32 address, gsi_base;
} __packed;
struct madt_override { /* 5.2.12.5 "Interrupt Source Override Structure" */
	u8 type, length, bus, source;
	u32 gsi;
	u16 flags;
} __packed;
struct madt_lapic_nmi { /* 5.2.12.7 "Local APIC NMI Structure" */
	u8 type, length, processor_uid;
	u16 flags;
	u8 lint;
} __packed;
_Static_assert(sizeof(struct madt) == 44 && sizeof(struct madt_lapic) == 8, "MADT");
_Static_assert(sizeof(struct madt_ioapic) == 12 && sizeof(struct madt_override) == 10, "MADT");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT");
#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_IOAPIC 1
#define MADT_TYPE_OVERRIDE 2
#define MADT_TYPE_LAPIC_NMI 4
#define MADT_ENABLED BIT(0)
#define MADT_ALL_PROCESSORS 0xFF
/* Table 5.26 "MPS INTI Flags": polarity in bits 1:0, trigger mode in 3:2. */
#define INTI_CONFORMS 0x0
#define INTI_ACTIVE_HIGH 0x1
#define INTI_LEVEL (0x3 << 2)

/* MP spec 1.4, 4.1 "MP Floating Pointer Structure" and 4.2 "MP Configuration
 * Table Header". */
struct mp_floating {
	char signature[4]; /* "_MP_" */
	u32 config;
	u8 length; /* in 16-byte units */
	u8 spec_rev, checksum;
	u8 features[5]; /* all zero: a configuration table is present, no IMCR */
} __packed;
struct mp_config {
	char signature[4]; /* "PCMP" */
	u16 length;
	u8 spec_rev, checksum;
	char oem_id[8], product_id[12];
	u32 oem_table;
	u16 oem_table_size, entries;
	u32 lapic_address;
	u16 ext_length;
	u8 ext_checksum, reserved;
} __packed;
/* 4.3 "MP Configuration Table Entries". */
struct mp_processor {
	u8 type, lapic_id, lapic_version, flags;
	u32 signature, features;
	u32 reserved[2];
} __packed;
struct mp_bus {
	u8 type, id;
	char name[6];
} __packed;
struct mp_ioapic {
	u8 type, id, version, flags;
	u32 address;
} __packed;
struct mp_intr { /* I/O and local interrupt assignment entries alike */
	u8 type, intr_type;
	u16 flags;
	u8 bus, bus_irq, dest_id, dest_pin;
} __packed;
_Static_assert(sizeof(struct mp_floating) == 16 && sizeof(struct mp_config) == 44, "MP");
_Static_assert(sizeof(struct mp_processor) == 20 && sizeof(struct mp_bus) == 8, "MP");
_Static_assert(sizeof(struct mp_ioapic) == 8 && sizeof(struct mp_intr) == 8, "MP");
#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_IO_INTR 3
#define MP_LOCAL_INTR 4
#define MP_CPU_ENABLED BIT(0)
#define MP_CPU_BSP BIT(1)
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3
#define MP_ALL_LAPICS 0xFF
/* What the processor entries claim: family 6 (CPUID signature), FPU and
 * APIC present (CPUID.1:EDX bits 0 and 9). Informational only to an OS. */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES (BIT(0) | BIT(9))

/* AML, ACPI 6.4 20.2 "AML Grammar Definition". */
#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE_PREFIX 0x0A
#define AML_PACKAGE 0x12

static u8 checksum(const void *p, size_t len)
{
	const u8 *b = p;
	u8 sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (u8)-sum;
}

/* A bump allocator over the area: returns the offset of `len` bytes. */
struct cursor {
	u32 at;
};

static u32 take(struct cursor *c, u32 len, u32 align)
{
	u32 off = (u32)ALIGN_UP(c->at, align);

	c->at = off + len;
	return off;
}

static void header(struct acpi_sdt_header *h, const char *sig, u32 len, u8 rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(&h->creator_id, CREATOR_ID, 4);
	h->creator_revision = 1;
}

static void seal(void *table)
{
	struct acpi_sdt_header *h = table;

	h->checksum = 0;
	h->checksum = checksum(h, h->length);
}

static u32 aml_integer(u8 *p, u32 v)
{
	if (v <= 1) {
		p[0] = v ? AML_ONE : AML_ZERO;
		return 1;
	}
	p[0] = AML_BYTE_PREFIX; /* SLP_TYP values are 3 bits */
	p[1] = (u8)v;
	return 2;
}

/* The DSDT: Name (\_S5, Package (0x04) {SLP_TYPa, SLP_TYPb, 0, 0}), the one
 * object OSPM needs to power off through PM1a_CNT (7.4.2 "\_Sx (System
 * States)"). The devices themselves are described by the FADT and the MADT.
 * Returns the table's length. */
static u32 build_dsdt(u8 *t)
{
	u8 *aml = t + sizeof(struct acpi_sdt_header), *pkg;
	u32 n = 0;

	aml[n++] = AML_NAME;
	memcpy(aml + n, "_S5_", 4);
	n += 4;
	aml[n++] = AML_PACKAGE;
	pkg = aml + n++; /* PkgLength, one byte: the package is short */
	aml[n++] = 4;	 /* NumElements */
	n += aml_integer(aml + n, PLAT_SLP_TYP_S5);
	n += aml_integer(aml + n, PLAT_SLP_TYP_S5);
	aml[n++] = AML_ZERO;
	aml[n++] = AML_ZERO;
	*pkg = (u8)(aml + n - pkg); /* counts itself (20.2.4 "Package Length Encoding") */
	/* Revision 2: integers are 64 bits wide in this definition block. */
	header((struct acpi_sdt_header *)t, "DSDT", (u32)sizeof(struct acpi_sdt_header) + n, 2);
	seal(t);
	return (u32)sizeof(struct acpi_sdt_header) + n;
}

static void io_gas(struct gas *g, u16 port, u8 bytes, u8 access)
{
	*g = (struct gas){ GAS_SYSTEM_IO, (u8)(bytes * 8), 0, access, port };
}

/* The FADT: no SMI_CMD, so OSPM finds the machine already in ACPI mode
 * (SCI_EN set) and never tries to switch; PM1a event/control, the PM timer
 * (24 bits) and the reset register at their platform.h ports. */
static void build_fadt(struct fadt *f, u64 facs, u64 dsdt)
{
	header(&f->hdr, "FACP", sizeof(*f), 6);
	f->firmware_ctrl = (u32)facs;
	f->x_firmware_ctrl = facs;
	f->dsdt = (u32)dsdt;
	f->x_dsdt = dsdt;
	f->sci_int = PLAT_IRQ_SCI;
	f->pm1a_evt_blk = PLAT_PM1A_EVT;
	f->pm1a_cnt_blk = PLAT_PM1A_CNT;
	f->pm_tmr_blk = PLAT_PM_TMR;
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->p_lvl2_lat = C2_NOT_SUPPORTED;
	f->p_lvl3_lat = C3_NOT_SUPPORTED;
	f->century = PLAT_CMOS_CENTURY;
	f->iapc_boot_arch = IAPC_LEGACY_DEVICES | IAPC_8042;
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_FIX_RTC |
		   FADT_RESET_REG_SUP;
	io_gas(&f->reset_reg, PLAT_RESET_PORT, 1, GAS_ACCESS_BYTE);
	f->reset_value = PLAT_RESET_VALUE;
	f->minor_version = 4; /* ACPI 6.4 */
	io_gas(&f->x_pm1a_evt_blk, PLAT_PM1A_EVT, 4, GAS_ACCESS_WORD);
	io_gas(&f->x_pm1a_cnt_blk, PLAT_PM1A_CNT, 2, GAS_ACCESS_WORD);
	io_gas(&f->x_pm_tmr_blk, PLAT_PM_TMR, 4, GAS_ACCESS_DWORD);
	memcpy(&f->hypervisor_vendor, "AmberVMM", 8);
	seal(f);
}

/* The MADT: a local APIC per vCPU, the IOAPIC with GSIs from 0, ISA IRQ0 on
 * GSI 2 and the SCI level-triggered, NMI on every LINT1. Returns its length. */
static u32 build_madt(u8 *t, int ncpus)
{
	struct madt *m = (struct madt *)t;
	u32 n = sizeof(*m);

	m->lapic_address = (u32)PLAT_LAPIC_BASE;
	m->flags = MADT_PCAT_COMPAT;
	for (int i = 0; i < ncpus; i++) {
		struct madt_lapic e = { MADT_TYPE_LAPIC, sizeof(e), (u8)i, (u8)i, MADT_ENABLED };

		memcpy(t + n, &e, sizeof(e));
		n += sizeof(e);
	}
	{
		struct madt_ioapic e = { MADT_TYPE_IOAPIC,	sizeof(e), PLAT_IOAPIC_ID, 0,
					 (u32)PLAT_IOAPIC_BASE, 0 };

		memcpy(t + n, &e, sizeof(e));
		n += sizeof(e);
	}
	{
		struct madt_override pit = { MADT_TYPE_OVERRIDE, sizeof(pit),  0,
					     PLAT_IRQ_PIT,	 PLAT_GSI_PIT, INTI_CONFORMS };
		struct madt_override sci = {
			MADT_TYPE_OVERRIDE, sizeof(sci),  0,
			PLAT_IRQ_SCI,	    PLAT_IRQ_SCI, INTI_ACTIVE_HIGH | INTI_LEVEL
		};

		memcpy(t + n, &pit, sizeof(pit));
		n += sizeof(pit);
		memcpy(t + n, &sci, sizeof(sci));
		n += sizeof(sci);
	}
	{
		struct madt_lapic_nmi e = { MADT_TYPE_LAPIC_NMI, sizeof(e), MADT_ALL_PROCESSORS,
					    INTI_CONFORMS, 1 };

		memcpy(t + n, &e, sizeof(e));
		n += sizeof(e);
	}
	header(&m->hdr, "APIC", n, 5);
	seal(m);
	return n;
}

static u32 put_intr(u8 *t, u32 n, u8 type, u8 intr, u16 flags, u8 irq, u8 dest, u8 pin)
{
	struct mp_intr e = { type, intr, flags, 0, irq, dest, pin };

	memcpy(t + n, &e, sizeof(e));
	return n + sizeof(e);
}

/* The MP configuration table: the same machine as the MADT, for kernels that
 * predate ACPI (4.3 "MP Configuration Table Entries"): processors, one ISA
 * bus, the IOAPIC, each ISA IRQ on the IOAPIC pin of the same number (IRQ0 on
 * pin 2, the SCI level-triggered), ExtINT on LINT0 and NMI on LINT1. */
static u32 build_mp_config(u8 *t, int ncpus)
{
	struct mp_config *c = (struct mp_config *)t;
	u32 n = sizeof(*c);
	u16 entries = 0;

	for (int i = 0; i < ncpus; i++, entries++) {
		struct mp_processor p = { MP_PROCESSOR,
					  (u8)i,
					  PLAT_LAPIC_VERSION,
					  MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
					  MP_CPU_SIGNATURE,
					  MP_CPU_FEATURES,
					  { 0, 0 } };

		memcpy(t + n, &p, sizeof(p));
		n += sizeof(p);
	}
	{
		struct mp_bus b = { MP_BUS, 0, { 'I', 'S', 'A', ' ', ' ', ' ' } };
		struct mp_ioapic io = { MP_IOAPIC, PLAT_IOAPIC_ID, PLAT_IOAPIC_VERSION, 1,
					(u32)PLAT_IOAPIC_BASE };

		memcpy(t + n, &b, sizeof(b));
		n += sizeof(b);
		memcpy(t + n, &io, sizeof(io));
		n += sizeof(io);
		entries += 2;
	}
	for (u8 irq = 0; irq < 16; irq++) {
		u8 pin = irq == PLAT_IRQ_PIT ? PLAT_GSI_PIT : irq;
		u16 flags = irq == PLAT_IRQ_SCI ? INTI_ACTIVE_HIGH | INTI_LEVEL : INTI_CONFORMS;

		if (irq == 2)
			continue; /* the cascade: nothing arrives from ISA IRQ2 */
		n = put_intr(t, n, MP_IO_INTR, MP_INT, flags, irq, PLAT_IOAPIC_ID, pin);
		entries++;
	}
	n = put_intr(t, n, MP_LOCAL_INTR, MP_EXTINT, INTI_CONFORMS, 0, MP_ALL_LAPICS, 0);
	n = put_intr(t, n, MP_LOCAL_INTR, MP_NMI, INTI_CONFORMS, 0, MP_ALL_LAPICS, 1);
	entries += 2;
	memcpy(c->signature, "PCMP", 4);
	c->length = (u16)n;
	c->spec_rev = 4;
	memcpy(c->oem_id, "AMBER   ", 8);
	memcpy(c->product_id, "AMBER VM    ", 12);
	c->entries = entries;
	c->lapic_address = (u32)PLAT_LAPIC_BASE;
	c->checksum = checksum(c, n);
	return n;
}

int fwtables_build(u8 *area, int ncpus, struct fwtables_layout *where)
{
	struct fwtables_layout l;
	struct cursor c = { 0 };
	u32 dsdt, facs, fadt, madt, rsdt, xsdt, rsdp, mpf, mpc;
	u32 madt_len, mpc_len;
	struct rsdp *r;
	struct mp_floating *f;
	u64 entries[2];

	if (ncpus < 1 || ncpus > VM_MAX_VCPUS)
		return -EINVAL;
	memset(area, 0, FWTABLES_SIZE);
	dsdt = take(&c, 0, 16);
	c.at += build_dsdt(area + dsdt);
	facs = take(&c, sizeof(struct facs), 64); /* 5.2.10: 64-byte aligned */
	memcpy(area + facs, "FACS", 4);
	((struct facs *)(area + facs))->length = sizeof(struct facs);
	((struct facs *)(area + facs))->version = 2;
	madt = take(&c, 0, 16);
	madt_len = build_madt(area + madt, ncpus);
	c.at += madt_len;
	fadt = take(&c, sizeof(struct fadt), 16);
	build_fadt((struct fadt *)(area + fadt), PLAT_BIOS_AREA + facs, PLAT_BIOS_AREA + dsdt);

	/* RSDT and XSDT list the FADT and the MADT (the DSDT hangs off the FADT,
	 * the FACS too). */
	entries[0] = PLAT_BIOS_AREA + fadt;
	entries[1] = PLAT_BIOS_AREA + madt;
	rsdt = take(&c, sizeof(struct acpi_sdt_header) + 2 * 4, 16);
	for (int i = 0; i < 2; i++) {
		u32 e = (u32)entries[i];

		memcpy(area + rsdt + sizeof(struct acpi_sdt_header) + 4 * i, &e, 4);
	}
	header((struct acpi_sdt_header *)(area + rsdt), "RSDT", c.at - rsdt, 1);
	seal(area + rsdt);
	xsdt = take(&c, sizeof(struct acpi_sdt_header) + sizeof(entries), 16);
	memcpy(area + xsdt + sizeof(struct acpi_sdt_header), entries, sizeof(entries));
	header((struct acpi_sdt_header *)(area + xsdt), "XSDT", c.at - xsdt, 1);
	seal(area + xsdt);

	/* The pointers, on 16-byte boundaries in 0xF0000-0xFFFFF (ACPI 6.4
	 * 5.2.5.1 "Finding the RSDP on IA-PC Systems", MP spec 4 "MP
	 * Configuration Table"). */
	c.at = MAX(c.at, (u32)RSDP_OFFSET);
	rsdp = take(&c, sizeof(struct rsdp), 16);
	r = (struct rsdp *)(area + rsdp);
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, OEM_ID, 6);
	r->revision = 2;
	r->rsdt = (u32)(PLAT_BIOS_AREA + rsdt);
	r->length = sizeof(*r);
	r->xsdt = PLAT_BIOS_AREA + xsdt;
	r->checksum = checksum(r, 20);
	r->ext_checksum = checksum(r, sizeof(*r));
	mpf = take(&c, sizeof(struct mp_floating), 16);
	mpc = take(&c, 0, 16);
	mpc_len = build_mp_config(area + mpc, ncpus);
	c.at += mpc_len;
	f = (struct mp_floating *)(area + mpf);
	memcpy(f->signature, "_MP_", 4);
	f->config = (u32)(PLAT_BIOS_AREA + mpc);
	f->length = 1;
	f->spec_rev = 4;
	f->checksum = checksum(f, sizeof(*f));

	l = (struct fwtables_layout){
		.rsdp = PLAT_BIOS_AREA + rsdp,
		.rsdt = PLAT_BIOS_AREA + rsdt,
		.xsdt = PLAT_BIOS_AREA + xsdt,
		.fadt = PLAT_BIOS_AREA + fadt,
		.facs = PLAT_BIOS_AREA + facs,
		.madt = PLAT_BIOS_AREA + madt,
		.dsdt = PLAT_BIOS_AREA + dsdt,
		.dsdt_len = ((struct acpi_sdt_header *)(area + dsdt))->length,
		.mp_floating = PLAT_BIOS_AREA + mpf,
		.mp_config = PLAT_BIOS_AREA + mpc,
	};
	if (where)
		*where = l;
	return 0;
}
