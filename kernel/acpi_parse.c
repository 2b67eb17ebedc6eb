/*
 * The pure part of ACPI discovery: validates the RSDP and every system
 * description table, and extracts what Amber uses (CPUs, ECAM, power-off).
 * Reads memory only through acpi_map(), so the host unit tests feed it tables
 * captured from QEMU and Bochs. Context: boot (acpi_init), single CPU.
 * Reference: ACPI 6.4 5.2 "ACPI System Description Tables".
 */
#include "kernel/acpi.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

/* ACPI 6.4 5.2.5.3 "Root System Description Pointer (RSDP) Structure". */
struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	u8 checksum;	   /* over the first 20 bytes */
	char oem_id[6];
	u8 revision; /* 0: ACPI 1.0 (20 bytes); 2: ACPI 2.0+ */
	u32 rsdt_address;
	u32 length; /* of the whole structure, revision 2+ */
	u64 xsdt_address;
	u8 extended_checksum; /* over `length` bytes */
	u8 reserved[3];
} __packed;
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
_Static_assert(offsetof(struct acpi_rsdp, xsdt_address) == 24, "RSDP XsdtAddress");

/* ACPI 6.4 5.2.3.2 "Generic Address Structure (GAS)". */
struct acpi_gas {
	u8 space_id; /* 0: system memory, 1: system I/O */
	u8 bit_width;
	u8 bit_offset;
	u8 access_size;
	u64 address;
} __packed;
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");
#define ACPI_GAS_IO 1

/* ACPI 6.4 5.2.9 "Fixed ACPI Description Table (FADT)": only the fields read.
 * ACPI 1.0 FADTs end at 116 bytes; the later fields are present only when the
 * table's length covers them. */
struct acpi_fadt {
	struct acpi_sdt_header hdr;
	u32 firmware_ctrl;
	u32 dsdt;
	u8 reserved0;
	u8 preferred_pm_profile;
	u16 sci_int;
	u32 smi_cmd;
	u8 acpi_enable;
	u8 acpi_disable;
	u8 s4bios_req;
	u8 pstate_cnt;
	u32 pm1a_evt_blk;
	u32 pm1b_evt_blk;
	u32 pm1a_cnt_blk;
	u32 pm1b_cnt_blk;
	u32 pm2_cnt_blk;
	u32 pm_tmr_blk;
	u32 gpe0_blk;
	u32 gpe1_blk;
	u8 pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	u8 gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	u16 p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	u8 duty_offset, duty_width, day_alrm, mon_alrm, century;
	u16 iapc_boot_arch;
	u8 reserved1;
	u32 flags;
	struct acpi_gas reset_reg;
	u8 reset_value;
	u16 arm_boot_arch;
	u8 fadt_minor_version;
	u64 x_firmware_ctrl;
	u64 x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
} __packed;
_Static_assert(offsetof(struct acpi_fadt, pm1a_cnt_blk) == 64, "FADT PM1a_CNT_BLK");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT Flags");
_Static_assert(offsetof(struct acpi_fadt, reset_reg) == 116, "FADT RESET_REG");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, x_pm1a_cnt_blk) == 172, "FADT X_PM1a_CNT_BLK");
#define ACPI_FADT_RESET_REG_SUP BIT(10)

/* ACPI 6.4 5.2.12 "Multiple APIC Description Table (MADT)". */
struct acpi_madt {
	struct acpi_sdt_header hdr;
	u32 lapic_address;
	u32 flags;
} __packed;
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT header");
#define MADT_LOCAL_APIC 0	   /* 5.2.12.2 "Processor Local APIC Structure" */
#define MADT_IO_APIC 1		   /* 5.2.12.3 "I/O APIC Structure" */
#define MADT_LAPIC_ADDR_OVERRIDE 5 /* 5.2.12.8 "Local APIC Address Override" */
#define MADT_LOCAL_X2APIC 9	   /* 5.2.12.12 "Processor Local x2APIC Structure" */
#define MADT_LAPIC_ENABLED BIT(0)

/* PCI Firmware Specification 3.0 4.1.2 "MCFG Table Description". */
struct acpi_mcfg_entry {
	u64 base_address;
	u16 segment;
	u8 start_bus;
	u8 end_bus;
	u32 reserved;
} __packed;
_Static_assert(sizeof(struct acpi_mcfg_entry) == 16, "MCFG allocation is 16 bytes");
#define ACPI_MCFG_ENTRIES_OFFSET 44 /* header + 8 reserved bytes */

/* AML opcodes, ACPI 6.4 20.2 "AML Grammar Definition". */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_PACKAGE_OP 0x12
#define AML_ROOT_CHAR 0x5c

bool acpi_checksum_ok(const void *p, size_t len)
{
	const u8 *b = p;
	u8 sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return sum == 0;
}

/* An RSDP is valid when its 20-byte checksum holds and, for revision 2+, its
 * extended checksum over `length` bytes holds too. */
static bool rsdp_valid(const struct acpi_rsdp *r)
{
	if (memcmp(r->signature, "RSD PTR ", 8) != 0 || !acpi_checksum_ok(r, 20))
		return false;
	if (r->revision >= 2)
		return r->length >= sizeof(*r) && r->length <= 4096 &&
		       acpi_checksum_ok(r, sizeof(*r));
	return true;
}

u64 acpi_scan_rsdp(u64 phys, u64 len)
{
	const u8 *area = acpi_map(phys, len);

	if (!area)
		return 0;
	for (u64 off = 0; off + 20 <= len; off += 16) {
		const struct acpi_rsdp *r = (const void *)(area + off);

		if (memcmp(r->signature, "RSD PTR ", 8) != 0)
			continue;
		/* A revision 2 RSDP needs its 36 bytes inside the area. */
		if (r->revision >= 2 && off + sizeof(*r) > len)
			continue;
		if (rsdp_valid(r))
			return phys + off;
	}
	return 0;
}

static void copy_name(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		/* Some firmware pads with NUL instead of spaces (Bochs' DSDT). */
		dst[i] = c == 0 ? ' ' : (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	dst[n] = 0;
	/* OEM ids are space padded; trim for printing. */
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = 0;
}

/* Maps a table, checking its header's length and its checksum. Returns the
 * table or NULL (with a warning: a bad table is skipped, never trusted). */
static const struct acpi_sdt_header *map_table(u64 phys, struct acpi_info *out)
{
	const struct acpi_sdt_header *h;
	char sig[5];

	if (phys == 0)
		return NULL;
	h = acpi_map(phys, sizeof(*h));
	if (!h) {
		pr_warn("acpi: table at 0x%llx cannot be mapped, skipped\n",
			(unsigned long long)phys);
		out->skipped_tables++;
		return NULL;
	}
	copy_name(sig, h->signature, 4);
	if (h->length < sizeof(*h) || h->length > ACPI_MAX_TABLE_LEN) {
		pr_warn("acpi: table %s at 0x%llx has absurd length %u, skipped\n", sig,
			(unsigned long long)phys, h->length);
		out->skipped_tables++;
		return NULL;
	}
	h = acpi_map(phys, h->length);
	if (!h) {
		pr_warn("acpi: table %s at 0x%llx cannot be mapped, skipped\n", sig,
			(unsigned long long)phys);
		out->skipped_tables++;
		return NULL;
	}
	if (!acpi_checksum_ok(h, h->length)) {
		pr_warn("acpi: table %s at 0x%llx has a bad checksum, skipped\n", sig,
			(unsigned long long)phys);
		out->skipped_tables++;
		return NULL;
	}
	return h;
}

static void record_table(struct acpi_info *out, const struct acpi_sdt_header *h, u64 phys)
{
	int i = out->table_count;

	for (int j = 0; j < i; j++)
		if (out->tables[j].phys == phys)
			return; /* a DSDT also listed in the RSDT */
	if (i >= ACPI_MAX_TABLES) {
		char sig[5];

		copy_name(sig, h->signature, 4);
		pr_warn("acpi: more than %d tables, %s at 0x%llx not listed\n", ACPI_MAX_TABLES,
			sig, (unsigned long long)phys);
		return;
	}
	copy_name(out->tables[i].sig, h->signature, 4);
	out->tables[i].phys = phys;
	out->tables[i].length = h->length;
	copy_name(out->tables[i].oem_id, h->oem_id, 6);
	out->table_count++;
}

static void add_cpu(struct acpi_info *out, u32 apic_id)
{
	for (int i = 0; i < out->cpu_count && i < ACPI_MAX_CPUS; i++)
		if (out->cpu_apic_ids[i] == apic_id)
			return; /* listed both as LAPIC and x2APIC */
	if (out->cpu_count < ACPI_MAX_CPUS)
		out->cpu_apic_ids[out->cpu_count] = apic_id;
	out->cpu_count++;
}

/* Walks the MADT's interrupt controller structures; a zero or overrunning
 * entry length ends the walk (the rest of the table cannot be trusted). */
static void parse_madt(const struct acpi_sdt_header *h, struct acpi_info *out)
{
	const struct acpi_madt *madt = (const void *)h;
	const u8 *p = (const u8 *)h;
	u32 off = sizeof(*madt);

	if (h->length < sizeof(*madt)) {
		pr_warn("acpi: MADT too short (%u bytes)\n", h->length);
		return;
	}
	out->lapic_phys = madt->lapic_address;
	while (off + 2 <= h->length) {
		u8 type = p[off], len = p[off + 1];
		u32 flags, id;
		u64 addr;

		if (len < 2 || off + len > h->length) {
			pr_warn("acpi: MADT entry at +%u has bad length %u, rest ignored\n", off,
				len);
			break;
		}
		switch (type) {
		case MADT_LOCAL_APIC:
			if (len < 8)
				break;
			memcpy(&flags, p + off + 4, 4);
			if (flags & MADT_LAPIC_ENABLED)
				add_cpu(out, p[off + 3]);
			break;
		case MADT_LOCAL_X2APIC:
			if (len < 16)
				break;
			memcpy(&id, p + off + 4, 4);
			memcpy(&flags, p + off + 8, 4);
			if (flags & MADT_LAPIC_ENABLED)
				add_cpu(out, id);
			break;
		case MADT_IO_APIC:
			if (len < 12)
				break;
			if (out->ioapic_count++ == 0) {
				memcpy(&id, p + off + 4, 4);
				out->ioapic_phys = id;
			}
			break;
		case MADT_LAPIC_ADDR_OVERRIDE:
			if (len < 12)
				break;
			memcpy(&addr, p + off + 4, 8);
			out->lapic_phys = addr;
			break;
		}
		off += len;
	}
}

/* Takes the ECAM window of PCI segment 0 from the MCFG. */
static void parse_mcfg(const struct acpi_sdt_header *h, struct acpi_info *out)
{
	const u8 *p = (const u8 *)h;

	for (u32 off = ACPI_MCFG_ENTRIES_OFFSET; off + sizeof(struct acpi_mcfg_entry) <= h->length;
	     off += sizeof(struct acpi_mcfg_entry)) {
		struct acpi_mcfg_entry e;

		memcpy(&e, p + off, sizeof(e));
		if (e.segment != 0 || e.base_address == 0 || e.end_bus < e.start_bus)
			continue;
		out->ecam_base = e.base_address;
		out->ecam_bus_start = e.start_bus;
		out->ecam_bus_end = e.end_bus;
		return;
	}
	pr_warn("acpi: MCFG has no usable entry for segment 0\n");
}

/* A FADT field is usable only when the table's length covers it. */
#define FADT_HAS(f, field) \
	((f)->hdr.length >= offsetof(struct acpi_fadt, field) + sizeof((f)->field))

static u16 fadt_port(const struct acpi_fadt *f, u32 legacy, const struct acpi_gas *x, bool has_x)
{
	if (has_x && x->address && x->space_id == ACPI_GAS_IO && x->address <= 0xffff)
		return (u16)x->address;
	return legacy <= 0xffff ? (u16)legacy : 0;
}

static void parse_fadt(const struct acpi_sdt_header *h, struct acpi_info *out)
{
	const struct acpi_fadt *f = (const void *)h;

	if (!FADT_HAS(f, pm1b_cnt_blk)) {
		pr_warn("acpi: FADT too short (%u bytes)\n", h->length);
		return;
	}
	out->fadt_revision = h->revision;
	out->smi_cmd = f->smi_cmd;
	out->acpi_enable = f->acpi_enable;
	out->dsdt_phys = f->dsdt;
	if (FADT_HAS(f, x_dsdt) && f->x_dsdt)
		out->dsdt_phys = f->x_dsdt;
	out->pm1a_cnt =
		fadt_port(f, f->pm1a_cnt_blk, &f->x_pm1a_cnt_blk, FADT_HAS(f, x_pm1a_cnt_blk));
	out->pm1b_cnt =
		fadt_port(f, f->pm1b_cnt_blk, &f->x_pm1b_cnt_blk, FADT_HAS(f, x_pm1b_cnt_blk));
	if (FADT_HAS(f, reset_value) && (f->flags & ACPI_FADT_RESET_REG_SUP) &&
	    f->reset_reg.space_id == ACPI_GAS_IO && f->reset_reg.address &&
	    f->reset_reg.address <= 0xffff) {
		out->reset_port = (u16)f->reset_reg.address;
		out->reset_value = f->reset_value;
	}
}

/* Decodes one integer package element (ZeroOp, OneOp, Byte/Word/DWord
 * prefix); returns the bytes consumed, or 0 if it is something else. */
static size_t aml_integer(const u8 *p, size_t left, u32 *val)
{
	if (left < 1)
		return 0;
	switch (p[0]) {
	case AML_ZERO_OP:
		*val = 0;
		return 1;
	case AML_ONE_OP:
		*val = 1;
		return 1;
	case AML_BYTE_PREFIX:
		if (left < 2)
			return 0;
		*val = p[1];
		return 2;
	case AML_WORD_PREFIX:
		if (left < 3)
			return 0;
		*val = p[1] | (u32)p[2] << 8;
		return 3;
	case AML_DWORD_PREFIX:
		if (left < 5)
			return 0;
		*val = p[1] | (u32)p[2] << 8 | (u32)p[3] << 16 | (u32)p[4] << 24;
		return 5;
	}
	return 0;
}

/* The \_S5_ object: NameOp [RootChar] "_S5_" PackageOp PkgLength NumElements
 * elements... (ACPI 6.4 7.4.2 "\_Sx (System States)" and 20.2.5 "Term
 * Objects Encoding"). A plain byte search finds it without an AML interpreter;
 * requiring NameOp in front keeps a reference to _S5_ from matching. */
int acpi_find_s5(const u8 *aml, size_t len, u16 *slp_typa, u16 *slp_typb)
{
	for (size_t i = 1; i + 4 < len; i++) {
		size_t p, pkglen_bytes;
		u32 a, b;
		size_t n;

		if (memcmp(aml + i, "_S5_", 4) != 0)
			continue;
		if (!(aml[i - 1] == AML_NAME_OP ||
		      (aml[i - 1] == AML_ROOT_CHAR && i >= 2 && aml[i - 2] == AML_NAME_OP)))
			continue;
		p = i + 4;
		if (p >= len || aml[p] != AML_PACKAGE_OP)
			continue;
		p++;
		if (p >= len)
			continue;
		/* PkgLength: bits 7:6 of the lead byte count the bytes that follow. */
		pkglen_bytes = 1 + (aml[p] >> 6);
		p += pkglen_bytes + 1; /* and NumElements */
		if (p >= len)
			continue;
		n = aml_integer(aml + p, len - p, &a);
		if (!n)
			continue;
		p += n;
		if (!aml_integer(aml + p, len - p, &b))
			b = a; /* a one-element package: the same type for PM1b */
		*slp_typa = a & 7;
		*slp_typb = b & 7;
		return 0;
	}
	return -ENOENT;
}

static void find_s5_in(const struct acpi_sdt_header *h, struct acpi_info *out)
{
	if (out->s5_found)
		return;
	if (acpi_find_s5((const u8 *)h + sizeof(*h), h->length - sizeof(*h), &out->slp_typa,
			 &out->slp_typb) == 0)
		out->s5_found = true;
}

static void parse_table(const struct acpi_sdt_header *h, u64 phys, struct acpi_info *out)
{
	record_table(out, h, phys);
	if (!memcmp(h->signature, "APIC", 4))
		parse_madt(h, out);
	else if (!memcmp(h->signature, "MCFG", 4))
		parse_mcfg(h, out);
	else if (!memcmp(h->signature, "FACP", 4))
		parse_fadt(h, out);
}

int acpi_parse(u64 rsdp_phys, struct acpi_info *out)
{
	const struct acpi_rsdp *rsdp;
	const struct acpi_sdt_header *root = NULL, *h;
	u64 root_phys = 0;
	u32 entry_size = 4;

	memset(out, 0, sizeof(*out));
	/* Map the ACPI 1.0 part first: a revision 0 RSDP may end 20 bytes in. */
	rsdp = acpi_map(rsdp_phys, 20);
	if (rsdp && rsdp->revision >= 2)
		rsdp = acpi_map(rsdp_phys, sizeof(*rsdp));
	if (!rsdp || !rsdp_valid(rsdp)) {
		pr_warn("acpi: no valid RSDP at 0x%llx\n", (unsigned long long)rsdp_phys);
		return -ENOENT;
	}
	out->rsdp_phys = rsdp_phys;
	out->revision = rsdp->revision;

	/* ACPI 6.4 5.2.8 "Extended System Description Table (XSDT)": when both
	 * exist, the XSDT is the one to use. */
	if (rsdp->revision >= 2 && rsdp->xsdt_address) {
		root_phys = rsdp->xsdt_address;
		root = map_table(root_phys, out);
		if (root && memcmp(root->signature, "XSDT", 4) != 0)
			root = NULL;
		entry_size = 8;
		if (!root)
			pr_warn("acpi: XSDT unusable, trying the RSDT\n");
	}
	if (!root) {
		root_phys = rsdp->rsdt_address;
		root = map_table(root_phys, out);
		if (root && memcmp(root->signature, "RSDT", 4) != 0) {
			pr_warn("acpi: RSDT at 0x%llx has the wrong signature\n",
				(unsigned long long)root_phys);
			root = NULL;
		}
		entry_size = 4;
	}
	if (!root)
		return -ENOENT;
	record_table(out, root, root_phys);

	for (u32 off = sizeof(*root); off + entry_size <= root->length; off += entry_size) {
		u64 phys = 0;

		memcpy(&phys, (const u8 *)root + off, entry_size);
		h = map_table(phys, out);
		if (h)
			parse_table(h, phys, out);
	}

	/* The DSDT is reached from the FADT only; \_S5 lives there (or in an SSDT). */
	if (out->dsdt_phys) {
		h = map_table(out->dsdt_phys, out);
		if (h && !memcmp(h->signature, "DSDT", 4)) {
			record_table(out, h, out->dsdt_phys);
			find_s5_in(h, out);
		}
	}
	for (int i = 0; i < out->table_count && !out->s5_found; i++) {
		if (memcmp(out->tables[i].sig, "SSDT", 4) != 0)
			continue;
		h = acpi_map(out->tables[i].phys, out->tables[i].length);
		if (h)
			find_s5_in(h, out);
	}
	return 0;
}
