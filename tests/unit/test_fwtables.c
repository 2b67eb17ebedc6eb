/*
 * Host unit test of the firmware table builder (vmm/fwtables.c): every
 * checksum, the MADT for 1 and 8 vCPUs, the FADT's fields against
 * vmm/platform.h read at their offsets in ACPI 6.4 Table 5.9, the MP table;
 * then Amber's own ACPI parser (kernel/acpi_parse.c) reads the result as an
 * OS would, and ACPICA (iasl -d, then iasl) must disassemble the DSDT, FADT
 * and MADT without a complaint and compile them back to the same bytes.
 * Host only.
 */
#include "tests/unit/check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/acpi.h"
#include "vmm/fwtables.h"
#include "vmm/vmm.h"

static u8 area[FWTABLES_SIZE];
static int warnings;

const void *acpi_map(u64 phys, u64 len)
{
	if (phys < PLAT_BIOS_AREA || phys + len > PLAT_BIOS_AREA_END)
		return NULL;
	return area + (phys - PLAT_BIOS_AREA);
}

void pr_warn(const char *fmt, ...)
{
	va_list ap;

	warnings++;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static u8 *at(u64 gpa) { return area + (gpa - PLAT_BIOS_AREA); }
static u32 rd32(u64 gpa)
{
	return at(gpa)[0] | at(gpa)[1] << 8 | at(gpa)[2] << 16 | (u32)at(gpa)[3] << 24;
}
static u16 rd16(u64 gpa) { return at(gpa)[0] | at(gpa)[1] << 8; }
static u64 rd64(u64 gpa) { return rd32(gpa) | (u64)rd32(gpa + 4) << 32; }

static bool sum_ok(u64 gpa, u32 len)
{
	u8 s = 0;

	for (u32 i = 0; i < len; i++)
		s += at(gpa)[i];
	return s == 0;
}

static void check_table(u64 gpa, const char *sig)
{
	CHECK(memcmp(at(gpa), sig, 4) == 0);
	CHECK(sum_ok(gpa, rd32(gpa + 4)));
	CHECK(gpa % 4 == 0);
	CHECK(gpa + rd32(gpa + 4) <= PLAT_BIOS_AREA_END);
}

/* The MADT walked by hand: one enabled LAPIC per vCPU, ids 0..n-1, the IOAPIC,
 * the two overrides and the LINT1 NMI, and nothing else. */
static void check_madt(u64 m, int ncpus)
{
	u32 len = rd32(m + 4), off = 44;
	int lapics = 0, ioapics = 0, irq0 = 0, sci = 0, nmi = 0, other = 0;

	CHECK_EQ(at(m)[8], 5); /* revision */
	CHECK_EQ(rd32(m + 36), 0xFEE00000);
	CHECK_EQ(rd32(m + 40), 1); /* PCAT_COMPAT */
	while (off < len) {
		u64 e = m + off;
		u8 type = at(e)[0], elen = at(e)[1];

		CHECK(elen >= 2 && off + elen <= len);
		if (elen < 2)
			break;
		if (type == 0 && elen == 8) {
			CHECK_EQ(at(e)[2], lapics); /* processor UID */
			CHECK_EQ(at(e)[3], lapics); /* APIC id */
			CHECK_EQ(rd32(e + 4), 1);
			lapics++;
		} else if (type == 1 && elen == 12) {
			CHECK_EQ(at(e)[2], PLAT_IOAPIC_ID);
			CHECK_EQ(rd32(e + 4), 0xFEC00000);
			CHECK_EQ(rd32(e + 8), 0); /* GSI base */
			ioapics++;
		} else if (type == 2 && elen == 10 && at(e)[3] == 0) {
			CHECK_EQ(at(e)[2], 0); /* ISA */
			CHECK_EQ(rd32(e + 4), 2);
			CHECK_EQ(rd16(e + 8), 0); /* conforms to ISA: edge, high */
			irq0++;
		} else if (type == 2 && elen == 10 && at(e)[3] == 9) {
			CHECK_EQ(rd32(e + 4), 9);
			CHECK_EQ(rd16(e + 8), 0xD); /* level, active high */
			sci++;
		} else if (type == 4 && elen == 6) {
			CHECK_EQ(at(e)[2], 0xFF); /* all processors */
			CHECK_EQ(at(e)[5], 1);	  /* LINT1 */
			nmi++;
		} else {
			other++;
		}
		off += elen;
	}
	CHECK_EQ(off, len);
	CHECK_EQ(lapics, ncpus);
	CHECK_EQ(ioapics, 1);
	CHECK_EQ(irq0, 1);
	CHECK_EQ(sci, 1);
	CHECK_EQ(nmi, 1);
	CHECK_EQ(other, 0);
}

/* The FADT read at the offsets of ACPI 6.4 Table 5.9, not through the
 * builder's struct: equal to vmm/platform.h. */
static void check_fadt(u64 f, const struct fwtables_layout *l)
{
	u32 flags = rd32(f + 112);

	CHECK_EQ(rd32(f + 4), 276);
	CHECK_EQ(at(f)[8], 6);	 /* revision */
	CHECK_EQ(at(f)[131], 4); /* minor version: 6.4 */
	CHECK_EQ(rd32(f + 36), l->facs);
	CHECK_EQ(rd64(f + 132), l->facs);
	CHECK_EQ(rd32(f + 40), l->dsdt);
	CHECK_EQ(rd64(f + 140), l->dsdt);
	CHECK_EQ(rd16(f + 46), PLAT_IRQ_SCI);
	CHECK_EQ(rd32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	CHECK_EQ(rd32(f + 56), 0x600);
	CHECK_EQ(rd32(f + 56), PLAT_PM1A_EVT);
	CHECK_EQ(rd32(f + 60), 0); /* no PM1b */
	CHECK_EQ(rd32(f + 64), 0x604);
	CHECK_EQ(rd32(f + 64), PLAT_PM1A_CNT);
	CHECK_EQ(rd32(f + 76), 0x608);
	CHECK_EQ(rd32(f + 76), PLAT_PM_TMR);
	CHECK_EQ(rd32(f + 80), 0);    /* no GPE0 */
	CHECK_EQ(at(f)[88], 4);	      /* PM1_EVT_LEN */
	CHECK_EQ(at(f)[89], 2);	      /* PM1_CNT_LEN */
	CHECK_EQ(at(f)[91], 4);	      /* PM_TMR_LEN */
	CHECK_EQ(at(f)[92], 0);	      /* GPE0_BLK_LEN */
	CHECK_EQ(rd16(f + 109), 3);   /* IAPC_BOOT_ARCH: legacy devices, 8042 */
	CHECK(flags & (1u << 10));    /* RESET_REG_SUP */
	CHECK(!(flags & (1u << 8)));  /* TMR_VAL_EXT clear: a 24-bit PM timer */
	CHECK(!(flags & (1u << 20))); /* not hardware-reduced */
	CHECK_EQ(at(f)[116], 1);      /* RESET_REG: system I/O */
	CHECK_EQ(at(f)[117], 8);
	CHECK_EQ(rd64(f + 120), 0xCF9);
	CHECK_EQ(rd64(f + 120), PLAT_RESET_PORT);
	CHECK_EQ(at(f)[128], PLAT_RESET_VALUE);
	CHECK_EQ(at(f)[128], 6);
	/* The X_ blocks agree with the legacy ones (space I/O, width = length). */
	CHECK_EQ(at(f)[148], 1);
	CHECK_EQ(at(f)[149], 32);
	CHECK_EQ(rd64(f + 152), PLAT_PM1A_EVT);
	CHECK_EQ(at(f)[172], 1);
	CHECK_EQ(at(f)[173], 16);
	CHECK_EQ(rd64(f + 176), PLAT_PM1A_CNT);
	CHECK_EQ(at(f)[208], 1);
	CHECK_EQ(at(f)[209], 32);
	CHECK_EQ(rd64(f + 212), PLAT_PM_TMR);
	CHECK_EQ(rd64(f + 164), 0); /* X_PM1b_EVT_BLK */
	/* The FACS: 64-byte aligned, signature and length. */
	CHECK_EQ(l->facs % 64, 0);
	CHECK(memcmp(at(l->facs), "FACS", 4) == 0);
	CHECK_EQ(rd32(l->facs + 4), 64);
}

/* The MP table found as a kernel finds it: "_MP_" on a 16-byte boundary in
 * 0xF0000-0xFFFFF. */
static void check_mp(int ncpus)
{
	u64 fp = 0, c;
	int cpus = 0, bsp = 0, buses = 0, ioapics = 0, irq0_pin = -1, sci_flags = -1, local = 0;
	u32 off;
	u16 n;

	for (u64 p = 0xF0000; p < 0x100000; p += 16)
		if (!memcmp(at(p), "_MP_", 4) && sum_ok(p, 16)) {
			fp = p;
			break;
		}
	CHECK(fp != 0);
	if (!fp)
		return;
	CHECK_EQ(at(fp)[8], 1);	 /* 16 bytes */
	CHECK_EQ(at(fp)[9], 4);	 /* MP 1.4 */
	CHECK_EQ(at(fp)[11], 0); /* a configuration table, no default config */
	c = rd32(fp + 4);
	CHECK(c >= PLAT_BIOS_AREA && c < PLAT_BIOS_AREA_END);
	CHECK(!memcmp(at(c), "PCMP", 4));
	CHECK(sum_ok(c, rd16(c + 4)));
	CHECK_EQ(rd32(c + 36), 0xFEE00000);
	n = rd16(c + 34);
	off = 44;
	for (u16 i = 0; i < n && off < rd16(c + 4); i++) {
		u64 e = c + off;

		switch (at(e)[0]) {
		case 0:
			CHECK_EQ(at(e)[1], cpus);
			CHECK_EQ(at(e)[2], PLAT_LAPIC_VERSION);
			CHECK(at(e)[3] & 1);
			bsp += !!(at(e)[3] & 2);
			if (at(e)[3] & 2)
				CHECK_EQ(at(e)[1], 0);
			cpus++;
			off += 20;
			continue;
		case 1:
			CHECK(!memcmp(at(e) + 2, "ISA   ", 6));
			buses++;
			break;
		case 2:
			CHECK_EQ(at(e)[1], PLAT_IOAPIC_ID);
			CHECK_EQ(rd32(e + 4), 0xFEC00000);
			ioapics++;
			break;
		case 3:
			CHECK_EQ(at(e)[6], PLAT_IOAPIC_ID);
			if (at(e)[5] == 0)
				irq0_pin = at(e)[7];
			if (at(e)[5] == 9)
				sci_flags = rd16(e + 2);
			break;
		case 4:
			CHECK_EQ(at(e)[6], 0xFF);
			CHECK_EQ(at(e)[7], at(e)[1] == 1 ? 1 : 0); /* NMI on LINT1, ExtINT LINT0 */
			local++;
			break;
		default:
			CHECK(!"unknown MP entry type");
		}
		off += 8;
	}
	CHECK_EQ(off, rd16(c + 4));
	CHECK_EQ(cpus, ncpus);
	CHECK_EQ(bsp, 1);
	CHECK_EQ(buses, 1);
	CHECK_EQ(ioapics, 1);
	CHECK_EQ(irq0_pin, 2);
	CHECK_EQ(sci_flags, 0xD);
	CHECK_EQ(local, 2);
}

static void check_build(int ncpus)
{
	struct fwtables_layout l;
	struct acpi_info info;
	u64 rsdp;

	memset(area, 0xAA, sizeof(area));
	CHECK_EQ(fwtables_build(area, ncpus, &l), 0);

	/* The RSDP as an OS finds it (ACPI 6.4 5.2.5.1): both checksums. */
	rsdp = acpi_scan_rsdp(PLAT_BIOS_AREA, FWTABLES_SIZE);
	CHECK_EQ(rsdp, l.rsdp);
	CHECK_EQ(rsdp % 16, 0);
	CHECK(rsdp >= 0xE0000 && rsdp < 0x100000);
	CHECK(!memcmp(at(rsdp), "RSD PTR ", 8));
	CHECK(sum_ok(rsdp, 20));
	CHECK(sum_ok(rsdp, 36));
	CHECK_EQ(at(rsdp)[15], 2);
	CHECK_EQ(rd32(rsdp + 16), l.rsdt);
	CHECK_EQ(rd32(rsdp + 20), 36);
	CHECK_EQ(rd64(rsdp + 24), l.xsdt);
	check_table(l.rsdt, "RSDT");
	check_table(l.xsdt, "XSDT");
	check_table(l.fadt, "FACP");
	check_table(l.madt, "APIC");
	check_table(l.dsdt, "DSDT");
	CHECK_EQ(rd32(l.rsdt + 4), 36 + 8);
	CHECK_EQ(rd32(l.rsdt + 36), l.fadt);
	CHECK_EQ(rd32(l.rsdt + 40), l.madt);
	CHECK_EQ(rd32(l.xsdt + 4), 36 + 16);
	CHECK_EQ(rd64(l.xsdt + 36), l.fadt);
	CHECK_EQ(rd64(l.xsdt + 44), l.madt);
	check_madt(l.madt, ncpus);
	check_fadt(l.fadt, &l);
	check_mp(ncpus);

	/* Amber's own parser, an independent reader. */
	warnings = 0;
	memset(&info, 0, sizeof(info));
	CHECK_EQ(acpi_parse(rsdp, &info), 0);
	CHECK_EQ(warnings, 0);
	CHECK_EQ(info.skipped_tables, 0);
	CHECK_EQ(info.revision, 2);
	CHECK_EQ(info.table_count, 4); /* XSDT FACP APIC DSDT */
	CHECK_STR(info.tables[0].sig, "XSDT");
	CHECK_STR(info.tables[0].oem_id, "AMBER");
	CHECK_EQ(info.cpu_count, ncpus);
	for (int i = 0; i < ncpus && i < ACPI_MAX_CPUS; i++)
		CHECK_EQ(info.cpu_apic_ids[i], i);
	CHECK_EQ(info.lapic_phys, PLAT_LAPIC_BASE);
	CHECK_EQ(info.ioapic_count, 1);
	CHECK_EQ(info.ioapic_phys, PLAT_IOAPIC_BASE);
	CHECK_EQ(info.pm1a_cnt, PLAT_PM1A_CNT);
	CHECK_EQ(info.pm1b_cnt, 0);
	CHECK(info.s5_found);
	CHECK_EQ(info.slp_typa, PLAT_SLP_TYP_S5);
	CHECK_EQ(info.slp_typb, PLAT_SLP_TYP_S5);
	CHECK_EQ(info.reset_port, PLAT_RESET_PORT);
	CHECK_EQ(info.reset_value, PLAT_RESET_VALUE);
	CHECK_EQ(info.smi_cmd, 0);
	CHECK_EQ(info.fadt_revision, 6);
	CHECK_EQ(info.dsdt_phys, l.dsdt);
}

/* Runs `cmd` in a shell; returns the number of lines of its output that
 * report a problem (an error or warning line, ACPICA's "Firmware Warning"
 * for a bad checksum included), plus one if it failed. */
static int run_counting(const char *what, const char *cmd)
{
	char line[512];
	FILE *f = popen(cmd, "r");
	int problems = 0, status;

	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f))
		if ((strstr(line, "Error") || strstr(line, "Warning")) &&
		    !strstr(line, " 0 Errors, 0 Warnings")) {
			fprintf(stderr, "%s: %s", what, line);
			problems++;
		}
	status = pclose(f);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: failed (status %d)\n", what, status);
		problems++;
	}
	return problems;
}

/* Writes one table to dir/name.dat, disassembles it with `iasl -d`, compiles
 * the disassembly again and compares: 0 when ACPICA read the table without
 * a complaint and its own reading gives back the same bytes after the
 * header (whose creator fields iasl rewrites), else the number of problems. */
static int iasl_round_trip(const char *dir, const char *name, u64 gpa)
{
	u32 len = rd32(gpa + 4);
	char path[512], cmd[1200];
	static u8 again[4096];
	size_t got;
	FILE *f;
	int problems;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(at(gpa), len, 1, f) != 1)
		return 1;
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat 2>&1", dir, name);
	problems = run_counting("iasl -d", cmd);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p %s-again %s.dsl 2>&1", dir, name, name);
	problems += run_counting("iasl", cmd);
	snprintf(path, sizeof(path), "%s/%s-again.aml", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return problems + 1;
	got = fread(again, 1, sizeof(again), f);
	fclose(f);
	if (got != len || memcmp(again + 36, at(gpa) + 36, len - 36) != 0) {
		fprintf(stderr, "iasl: %s compiled back from its disassembly differs\n", name);
		problems++;
	}
	return problems;
}

static void check_iasl(void)
{
	struct fwtables_layout l;
	char dir[] = "/tmp/amber-fwtables-XXXXXX", cmd[128];

	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		printf("fwtables: iasl not installed (acpica-tools): ACPICA check skipped\n");
		return;
	}
	CHECK(mkdtemp(dir) != NULL);
	fwtables_build(area, 2, &l);
	CHECK_EQ(iasl_round_trip(dir, "dsdt", l.dsdt), 0);
	CHECK_EQ(iasl_round_trip(dir, "facp", l.fadt), 0);
	CHECK_EQ(iasl_round_trip(dir, "apic", l.madt), 0);
	/* And the check can fail: a wrong checksum is reported. */
	fprintf(stderr, "fwtables: a DSDT with a wrong checksum (expected to be reported):\n");
	at(l.dsdt)[9] ^= 1;
	CHECK(iasl_round_trip(dir, "bad", l.dsdt) > 0);
	at(l.dsdt)[9] ^= 1;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

int main(void)
{
	check_build(1);
	check_build(8);
	CHECK_EQ(fwtables_build(area, 0, NULL), -EINVAL);
	CHECK_EQ(fwtables_build(area, VM_MAX_VCPUS + 1, NULL), -EINVAL);
	check_iasl();
	return test_done("fwtables");
}
