/*
 * Host unit test of kernel/acpi_parse.c: parses ACPI tables captured from QEMU
 * (pc, q35, q35 with OVMF) and Bochs (tests/unit/data/capture_acpi.py), then
 * tables built here and broken on purpose. Host only.
 */
#include "tests/unit/check.h"

#include <stdarg.h>

#include "kernel/acpi.h"
#include "kernel/printk.h"

/* The captured images, linked in so the test finds them from any directory. */
#define INCBIN(sym, file) \
	__asm__(".section .rodata\n.balign 8\n.global " #sym "\n" #sym ":\n.incbin \"" file \
		"\"\n.previous\n"); \
	extern const unsigned char sym[]
INCBIN(acpi_qemu_pc, "tests/unit/data/acpi-qemu-pc.bin");
INCBIN(acpi_qemu_q35, "tests/unit/data/acpi-qemu-q35.bin");
INCBIN(acpi_qemu_q35_ovmf, "tests/unit/data/acpi-qemu-q35-ovmf.bin");
INCBIN(acpi_bochs, "tests/unit/data/acpi-bochs.bin");

/* A fake physical address space: a few regions backed by host memory. */
struct region {
	u64 phys;
	u64 len;
	unsigned char *mem;
};
static struct region regions[16];
static int region_count;
static int warnings;

const void *acpi_map(u64 phys, u64 len)
{
	for (int i = 0; i < region_count; i++) {
		struct region *r = &regions[i];
		if (phys >= r->phys && phys + len <= r->phys + r->len)
			return r->mem + (phys - r->phys);
	}
	return NULL;
}

void pr_warn(const char *fmt, ...)
{
	va_list ap;

	warnings++;
	fprintf(stderr, "  (pr_warn) ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void reset_memory(void)
{
	for (int i = 0; i < region_count; i++)
		free(regions[i].mem);
	region_count = 0;
	warnings = 0;
}

/* Each region gets its own allocation of exactly its size, so that the
 * sanitizer catches any read past a table's end. */
static unsigned char *add_region(u64 phys, u64 len)
{
	struct region *r = &regions[region_count++];

	r->phys = phys;
	r->len = len;
	r->mem = calloc(1, len);
	return r->mem;
}

/* Loads a capture: records of {u64 phys, u64 len, bytes, pad to 8}. */
static void load_capture(const unsigned char *blob)
{
	size_t off = 0;

	reset_memory();
	for (;;) {
		u64 phys, len;

		memcpy(&phys, blob + off, 8);
		memcpy(&len, blob + off + 8, 8);
		if (!len)
			break;
		memcpy(add_region(phys, len), blob + off + 16, len);
		off += 16 + ((len + 7) & ~7ULL);
	}
}

static unsigned char *phys_ptr(u64 phys) { return (unsigned char *)acpi_map(phys, 1); }

static void fix_checksum(unsigned char *p, size_t len, size_t csum_off)
{
	unsigned char sum = 0;

	p[csum_off] = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	p[csum_off] = (unsigned char)-sum;
}

static int find_table(const struct acpi_info *a, const char *sig)
{
	for (int i = 0; i < a->table_count; i++)
		if (!strcmp(a->tables[i].sig, sig))
			return i;
	return -1;
}

static struct acpi_info info;

static void test_qemu_pc(void)
{
	load_capture(acpi_qemu_pc);
	CHECK_EQ(acpi_parse(0xf59d0, &info), 0);
	CHECK_EQ(warnings, 0);
	CHECK_EQ(info.revision, 0);
	CHECK_EQ(info.table_count, 6); /* RSDT FACP APIC HPET WAET DSDT */
	CHECK(find_table(&info, "RSDT") == 0);
	CHECK(find_table(&info, "DSDT") >= 0);
	CHECK(find_table(&info, "HPET") >= 0);
	CHECK_STR(info.tables[0].oem_id, "BOCHS");
	CHECK_EQ(info.tables[0].phys, 0x7fe1a49);
	CHECK_EQ(info.cpu_count, 1);
	CHECK_EQ(info.cpu_apic_ids[0], 0);
	CHECK_EQ(info.lapic_phys, 0xfee00000);
	CHECK_EQ(info.ioapic_count, 1);
	CHECK_EQ(info.ioapic_phys, 0xfec00000);
	CHECK_EQ(info.ecam_base, 0);
	CHECK_EQ(info.pm1a_cnt, 0x604);
	CHECK_EQ(info.pm1b_cnt, 0);
	CHECK(info.s5_found);
	CHECK_EQ(info.slp_typa, 0);
	CHECK_EQ(info.slp_typb, 0);
	CHECK_EQ(info.dsdt_phys, 0x7fe0040);
	CHECK_EQ(info.reset_port, 0); /* an ACPI 1.0 FADT has no reset register */
	CHECK_EQ(info.smi_cmd, 0xb2);
	CHECK_EQ(info.skipped_tables, 0);
}

static void test_qemu_q35(void)
{
	load_capture(acpi_qemu_q35);
	CHECK_EQ(acpi_parse(0xf59e0, &info), 0);
	CHECK_EQ(warnings, 0);
	CHECK_EQ(info.table_count, 7); /* RSDT FACP APIC HPET MCFG WAET DSDT */
	CHECK_EQ(info.ecam_base, 0xb0000000);
	CHECK_EQ(info.ecam_bus_start, 0);
	CHECK_EQ(info.ecam_bus_end, 255);
	CHECK_EQ(info.cpu_count, 1);
	CHECK_EQ(info.pm1a_cnt, 0x604);
	CHECK(info.s5_found);
	CHECK_EQ(info.reset_port, 0xcf9);
	CHECK_EQ(info.reset_value, 0x0f);
	CHECK_EQ(info.fadt_revision, 3);
}

static void test_qemu_q35_ovmf(void)
{
	load_capture(acpi_qemu_q35_ovmf);
	/* OVMF publishes a revision 2 RSDP that is not 16-byte aligned. */
	CHECK_EQ(acpi_parse(0xf77e014, &info), 0);
	CHECK_EQ(warnings, 0);
	CHECK_EQ(info.revision, 2);
	CHECK(find_table(&info, "XSDT") == 0);
	CHECK(find_table(&info, "RSDT") < 0);
	CHECK(find_table(&info, "MCFG") > 0);
	CHECK(find_table(&info, "DSDT") > 0);
	CHECK_EQ(info.ecam_base, 0xb0000000);
	CHECK_EQ(info.pm1a_cnt, 0x604);
	CHECK(info.s5_found);
	CHECK_EQ(info.slp_typa, 0);
	CHECK_EQ(info.cpu_count, 1);
	CHECK_EQ(info.reset_port, 0xcf9);
}

static void test_bochs(void)
{
	load_capture(acpi_bochs);
	CHECK_EQ(acpi_parse(0xf9fa0, &info), 0);
	CHECK_EQ(warnings, 0);
	CHECK(find_table(&info, "SSDT") > 0);
	/* Bochs pads the DSDT's OEM id with NULs, not spaces. */
	CHECK(find_table(&info, "DSDT") > 0);
	CHECK_STR(info.tables[find_table(&info, "DSDT")].oem_id, "BXPC");
	CHECK_EQ(info.pm1a_cnt, 0xb004);
	CHECK(info.s5_found);
	CHECK_EQ(info.slp_typa, 0);
	CHECK_EQ(info.cpu_count, 1);
	CHECK_EQ(info.lapic_phys, 0xfee00000);
	CHECK_EQ(info.ecam_base, 0);
}

/* RSDP scan over a fake BIOS area: a bad checksum, a misaligned copy, then
 * the real one; only the last counts. */
static void test_scan(void)
{
	unsigned char *bios;
	unsigned char rsdp[20] = "RSD PTR ";

	reset_memory();
	bios = add_region(0xe0000, 0x20000);
	memcpy(rsdp + 9, "AMBER ", 6);
	rsdp[16] = 0x10; /* RsdtAddress, unused here */
	fix_checksum(rsdp, 20, 8);
	memcpy(bios + 0x1000, rsdp, 20);
	bios[0x1000 + 8] ^= 1;		 /* broken */
	memcpy(bios + 0x2008, rsdp, 20); /* not on a 16-byte boundary */
	memcpy(bios + 0x10010, rsdp, 20);
	CHECK_EQ(acpi_scan_rsdp(0xe0000, 0x20000), 0xf0010);
	/* The last 16 bytes of an area cannot hold an RSDP's 20. */
	memset(bios, 0, 0x20000);
	memcpy(bios + 0x1fff0, rsdp, 16);
	CHECK_EQ(acpi_scan_rsdp(0xe0000, 0x20000), 0);
	CHECK_EQ(acpi_scan_rsdp(0x100000, 0x1000), 0); /* unmapped */
}

/* The q35 capture, broken in one table at a time: the table is skipped with a
 * warning and the rest is still parsed. */
static u64 q35_table(const char *sig)
{
	load_capture(acpi_qemu_q35);
	acpi_parse(0xf59e0, &info);
	for (int i = 0; i < info.table_count; i++)
		if (!strcmp(info.tables[i].sig, sig))
			return info.tables[i].phys;
	return 0;
}

static void test_corrupt(void)
{
	u64 madt = q35_table("APIC");
	u64 hpet, rsdt;
	u32 v;

	CHECK(madt != 0);
	phys_ptr(madt)[40] ^= 0x55; /* MADT flags: checksum now wrong */
	CHECK_EQ(acpi_parse(0xf59e0, &info), 0);
	CHECK_EQ(info.skipped_tables, 1);
	CHECK_EQ(warnings, 1);
	CHECK_EQ(info.cpu_count, 0);
	CHECK_EQ(info.ecam_base, 0xb0000000);
	CHECK(find_table(&info, "APIC") < 0);

	hpet = q35_table("HPET");
	v = 0xffffff00; /* absurd length */
	memcpy(phys_ptr(hpet) + 4, &v, 4);
	CHECK_EQ(acpi_parse(0xf59e0, &info), 0);
	CHECK_EQ(info.skipped_tables, 1);
	CHECK(find_table(&info, "HPET") < 0);
	CHECK_EQ(info.cpu_count, 1);

	/* A length that runs past mapped memory: unmappable, skipped. */
	hpet = q35_table("HPET");
	v = 0x100000;
	memcpy(phys_ptr(hpet) + 4, &v, 4);
	CHECK_EQ(acpi_parse(0xf59e0, &info), 0);
	CHECK_EQ(info.skipped_tables, 1);

	/* An RSDT entry pointing nowhere. */
	rsdt = q35_table("RSDT");
	v = 0x3000000;
	memcpy(phys_ptr(rsdt) + 36, &v, 4);
	fix_checksum(phys_ptr(rsdt), 56, 9);
	CHECK_EQ(acpi_parse(0xf59e0, &info), 0);
	CHECK_EQ(info.skipped_tables, 1);
	CHECK_EQ(info.pm1a_cnt, 0); /* it was the FADT's entry */
	CHECK(!info.s5_found);

	/* A broken RSDP or RSDT: nothing to parse. */
	load_capture(acpi_qemu_q35);
	phys_ptr(0xf59e0)[8] ^= 1;
	CHECK_EQ(acpi_parse(0xf59e0, &info), -ENOENT);
	rsdt = q35_table("RSDT");
	phys_ptr(rsdt)[0] = 'X';
	fix_checksum(phys_ptr(rsdt), 56, 9);
	CHECK_EQ(acpi_parse(0xf59e0, &info), -ENOENT);
	CHECK_EQ(acpi_parse(0x12345670, &info), -ENOENT);

	/* OVMF: a broken XSDT falls back to the RSDT. */
	load_capture(acpi_qemu_q35_ovmf);
	{
		u64 xsdt;
		memcpy(&xsdt, phys_ptr(0xf77e014) + 24, 8);
		phys_ptr(xsdt)[20] ^= 1;
	}
	CHECK_EQ(acpi_parse(0xf77e014, &info), 0);
	CHECK(find_table(&info, "RSDT") == 0);
	CHECK_EQ(info.ecam_base, 0xb0000000);
}

/* Builds a table at phys: header, then body; fixes the checksum. */
static unsigned char *build_table(u64 phys, const char *sig, const void *body, u32 body_len)
{
	u32 len = 36 + body_len;
	unsigned char *t = add_region(phys, len);

	memcpy(t, sig, 4);
	memcpy(t + 4, &len, 4);
	t[8] = 1;
	memcpy(t + 10, "AMBER ", 6);
	memcpy(t + 16, "TESTTBL ", 8);
	memcpy(t + 36, body, body_len);
	fix_checksum(t, len, 9);
	return t;
}

/* MADT entries, ACPI 6.4 5.2.12.2, 5.2.12.12 and 5.2.12.8. */
static int put_lapic(unsigned char *m, int o, u8 apic_id, u32 flags)
{
	m[o] = 0;
	m[o + 1] = 8;
	m[o + 3] = apic_id;
	memcpy(m + o + 4, &flags, 4);
	return o + 8;
}

static int put_x2apic(unsigned char *m, int o, u32 id, u32 flags)
{
	m[o] = 9;
	m[o + 1] = 16;
	memcpy(m + o + 4, &id, 4);
	memcpy(m + o + 8, &flags, 4);
	return o + 16;
}

static int put_lapic_override(unsigned char *m, int o, u64 addr)
{
	m[o] = 5;
	m[o + 1] = 12;
	memcpy(m + o + 4, &addr, 8);
	return o + 12;
}

/* PCI Firmware 3.0 4.1.2: base, segment, start and end bus. */
static void put_mcfg(unsigned char *e, u64 base, u16 seg, u8 start, u8 end)
{
	memcpy(e, &base, 8);
	memcpy(e + 8, &seg, 2);
	e[10] = start;
	e[11] = end;
}

/* An XSDT-only machine with tables above 4 GiB, x2APIC entries and a MADT
 * whose last entry claims a zero length. */
static void test_synthetic(void)
{
	unsigned char rsdp[36] = "RSD PTR ";
	u64 xsdt_entries[2] = { 0x100001000ULL, 0x100002000ULL };
	unsigned char madt[8 + 8 + 8 + 16 + 16 + 12 + 2] = { 0 };
	unsigned char mcfg[8 + 16 + 16] = { 0 };
	u32 v;
	u64 q;
	int o = 0;

	reset_memory();
	memcpy(rsdp + 9, "AMBER ", 6);
	rsdp[15] = 2;
	v = 36;
	memcpy(rsdp + 20, &v, 4);
	q = 0x100000000ULL;
	memcpy(rsdp + 24, &q, 8);
	fix_checksum(rsdp, 20, 8);
	fix_checksum(rsdp, 36, 32);
	memcpy(add_region(0x80000, 36), rsdp, 36);
	build_table(0x100000000ULL, "XSDT", xsdt_entries, sizeof(xsdt_entries));

	v = 0xfee00000;
	memcpy(madt, &v, 4);
	o = 8;
	o = put_lapic(madt, o, 0, 1); /* enabled */
	o = put_lapic(madt, o, 1, 0); /* disabled: not counted */
	o = put_x2apic(madt, o, 300, 1);
	o = put_x2apic(madt, o, 0, 1); /* id 0 again: counted once */
	o = put_lapic_override(madt, o, 0x1fee00000ULL);
	/* A zero-length entry must end the walk, not loop forever. */
	madt[o] = 0;
	madt[o + 1] = 0;
	build_table(0x100001000ULL, "APIC", madt, sizeof(madt));

	/* MCFG: a segment 1 entry first, then segment 0 buses 0-63. */
	put_mcfg(mcfg + 8, 0xe0000000ULL, 1, 0, 255);
	put_mcfg(mcfg + 24, 0xc0000000ULL, 0, 0, 63);
	build_table(0x100002000ULL, "MCFG", mcfg, sizeof(mcfg));

	CHECK_EQ(acpi_parse(0x80000, &info), 0);
	CHECK_EQ(info.revision, 2);
	CHECK_EQ(info.table_count, 3);
	CHECK_EQ(info.cpu_count, 2);
	CHECK_EQ(info.cpu_apic_ids[0], 0);
	CHECK_EQ(info.cpu_apic_ids[1], 300);
	CHECK_EQ(info.lapic_phys, 0x1fee00000ULL);
	CHECK_EQ(warnings, 1); /* the zero-length MADT entry */
	CHECK_EQ(info.ecam_base, 0xc0000000ULL);
	CHECK_EQ(info.ecam_bus_start, 0);
	CHECK_EQ(info.ecam_bus_end, 63);
	CHECK(!info.s5_found);
	CHECK_EQ(info.pm1a_cnt, 0);
}

static int s5(const unsigned char *aml, size_t len, u16 *a, u16 *b)
{
	/* An exact-size copy: the sanitizer sees any read past the end. */
	unsigned char *copy = malloc(len);
	int r;

	memcpy(copy, aml, len);
	r = acpi_find_s5(copy, len, a, b);
	free(copy);
	return r;
}

static void test_s5(void)
{
	u16 a = 99, b = 99;
	/* Name(\_S5_, Package(4){5, 5, 0, 0}) with BytePrefix values. */
	static const unsigned char root[] = { 0x10, 0x08, 0x5c, '_',  'S',  '5',  '_',	0x12,
					      0x0a, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
	/* A two-byte PkgLength, OneOp and WordPrefix. */
	static const unsigned char two[] = { 0x08, '_',	 'S',  '5',  '_',  0x12, 0x40,
					     0x01, 0x02, 0x01, 0x0b, 0x07, 0x00 };
	/* A method that mentions _S5_ comes first (no NameOp before it); then
	 * a one-element package. */
	static const unsigned char ref[] = {
		0x70, '_', 'S', '5', '_', 0x12, 0x04, 0x01, 0x0a, 0x03,
		0x08, '_', 'S', '5', '_', 0x12, 0x03, 0x01, 0x0a, 0x06
	};
	/* Truncated in every place. */
	static const unsigned char cut[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x0a };

	CHECK_EQ(s5(root, sizeof(root), &a, &b), 0);
	CHECK_EQ(a, 5);
	CHECK_EQ(b, 5);
	CHECK_EQ(s5(two, sizeof(two), &a, &b), 0);
	CHECK_EQ(a, 1);
	CHECK_EQ(b, 7);
	CHECK_EQ(s5(ref, sizeof(ref), &a, &b), 0);
	CHECK_EQ(a, 6);
	CHECK_EQ(b, 6);
	for (size_t n = 0; n <= sizeof(cut); n++)
		CHECK_EQ(s5(cut, n, &a, &b), -ENOENT);
	CHECK_EQ(s5((const unsigned char *)"xx_S5_", 6, &a, &b), -ENOENT);
}

int main(void)
{
	test_qemu_pc();
	test_qemu_q35();
	test_qemu_q35_ovmf();
	test_bochs();
	test_scan();
	test_corrupt();
	test_synthetic();
	test_s5();
	reset_memory();
	return test_done("test_acpi");
}
