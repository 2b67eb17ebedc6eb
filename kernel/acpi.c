/*
 * ACPI at run time: finds the RSDP (boot loader or BIOS area), hands it to the
 * parser (kernel/acpi_parse.c), and does the two things Amber needs ACPI for:
 * power-off through \_S5 and reset through the FADT reset register.
 * Host context: acpi_init at boot, the rest from the shell. Single CPU.
 * Reference: ACPI 6.4 4.8.3.2 "PM1 Control Registers", 5.2 "ACPI System
 * Description Tables", 7.4.2 "\_Sx (System States)".
 */
#include "kernel/acpi.h"
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

/* ACPI 6.4 4.8.3.2.1 "PM1 Control Registers": SCI_EN, SLP_TYPx, SLP_EN. */
#define ACPI_PM1_SCI_EN BIT(0)
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP_MASK (7u << ACPI_PM1_SLP_TYP_SHIFT)
#define ACPI_PM1_SLP_EN BIT(13)

/* Emulator power-off ports, tried when ACPI S5 did not take: QEMU's PIIX4 and
 * ICH9 PM blocks (0x604 under SeaBIOS), the older QEMU/Bochs PM block at
 * 0xB004, and Bochs' "Shutdown" string port. */
#define QEMU_PM1A_CNT 0x604
#define BOCHS_PM1A_CNT 0xb004
#define BOCHS_SHUTDOWN_PORT 0x8900
#define EMU_S5_VALUE 0x2000 /* SLP_TYP 0, SLP_EN */

/* i8042 keyboard controller: command 0xFE pulses the CPU reset line. */
#define I8042_STATUS 0x64
#define I8042_STATUS_IBF BIT(1)
#define I8042_CMD_RESET 0xfe

struct acpi_info acpi;

const void *acpi_map(u64 phys, u64 len)
{
	if (phys < PAGE_SIZE || len == 0 || phys + len < phys)
		return NULL; /* page 0 stays unmapped to catch NULL pointers */
	if (phys + len <= GiB(4))
		return phys_to_virt(phys); /* all of the first 4 GiB is mapped */
	return ioremap(phys, len);
}

/* The EBDA's first KiB: ACPI 6.4 5.2.5.1 names the segment word at 0x40E, but
 * page 0 is unmapped here, so the EBDA is located as what the memory map says
 * it is: the reserved tail of conventional memory below 640 KiB. */
static u64 ebda_base(void)
{
	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mem_range *r = &boot_info.mmap[i];
		u64 end = r->base + r->len;

		if (r->type == MEM_USABLE && r->base == 0 && end >= 0x80000 && end < 0xa0000)
			return end;
	}
	return 0;
}

static u64 acpi_find_rsdp(void)
{
	u64 ebda = ebda_base(), rsdp;

	if (boot_info.rsdp_phys)
		return boot_info.rsdp_phys;
	if (ebda) {
		rsdp = acpi_scan_rsdp(ebda, MIN(KiB(1), 0xa0000 - ebda));
		if (rsdp)
			return rsdp;
	}
	return acpi_scan_rsdp(0xe0000, 0x20000);
}

void acpi_init(void)
{
	u64 rsdp = acpi_find_rsdp();
	char how[96];

	if (!rsdp) {
		pr_warn("acpi: no RSDP found; no CPU list, ECAM or ACPI power-off\n");
		return;
	}
	if (acpi_parse(rsdp, &acpi) < 0)
		return;
	acpi.rsdp_from_loader = rsdp == boot_info.rsdp_phys;
	acpi_describe_poweroff(how, sizeof(how));
	pr_info("acpi: RSDP at 0x%llx (revision %u), %d tables, %d CPU(s), %s%s\n",
		(unsigned long long)rsdp, acpi.revision, acpi.table_count, acpi.cpu_count,
		acpi.ecam_base ? "ECAM, " : "", how);
}

const struct acpi_sdt_header *acpi_find_table(const char sig[4])
{
	for (int i = 0; i < acpi.table_count; i++)
		if (!memcmp(acpi.tables[i].sig, sig, 4))
			return acpi_map(acpi.tables[i].phys, acpi.tables[i].length);
	return NULL;
}

void acpi_describe_poweroff(char *buf, size_t len)
{
	if (acpi.pm1a_cnt && acpi.s5_found)
		snprintf(buf, len, "power-off via ACPI S5 (PM1a_CNT 0x%x%s, SLP_TYP %u/%u)",
			 acpi.pm1a_cnt, acpi.pm1b_cnt ? ", PM1b_CNT too" : "", acpi.slp_typa,
			 acpi.slp_typb);
	else if (acpi.pm1a_cnt)
		snprintf(buf, len, "power-off via emulator ports only (no \\_S5 in the DSDT)");
	else
		snprintf(buf, len, "power-off via emulator ports only (no FADT)");
}

/* Legacy systems start with SCI_EN clear; ACPI mode is entered by writing
 * ACPI_ENABLE to SMI_CMD (ACPI 6.4 4.8.2.1 "Legacy/ACPI Select and the SCI
 * Interrupt"). Sleep registers may be ignored until then. */
static void acpi_enter_acpi_mode(void)
{
	u64 dl;

	if (inw(acpi.pm1a_cnt) & ACPI_PM1_SCI_EN)
		return;
	if (!acpi.smi_cmd || !acpi.acpi_enable || acpi.smi_cmd > 0xffff)
		return;
	outb((u16)acpi.smi_cmd, acpi.acpi_enable);
	dl = deadline_after_us(300000);
	while (!(inw(acpi.pm1a_cnt) & ACPI_PM1_SCI_EN) && !deadline_passed(dl))
		cpu_relax();
}

static void pm1_sleep(u16 port, u16 typ)
{
	u16 v = inw(port) & ~(ACPI_PM1_SLP_TYP_MASK | ACPI_PM1_SLP_EN);

	v |= (u16)(typ << ACPI_PM1_SLP_TYP_SHIFT);
	outw(port, v);
	outw(port, v | ACPI_PM1_SLP_EN);
}

void acpi_poweroff(void)
{
	static const char shutdown[] = "Shutdown";

	cli();
	if (acpi.pm1a_cnt && acpi.s5_found) {
		acpi_enter_acpi_mode();
		/* ACPI 6.4 16.1.7 "Transitioning from the Working to the Sleeping
		 * State": SLP_TYPa to PM1a_CNT, SLP_TYPb to PM1b_CNT, each with SLP_EN. */
		pm1_sleep(acpi.pm1a_cnt, acpi.slp_typa);
		if (acpi.pm1b_cnt)
			pm1_sleep(acpi.pm1b_cnt, acpi.slp_typb);
		/* Real hardware needs a moment to cut power. */
		mdelay(100);
		pr_warn("acpi: S5 through PM1a_CNT 0x%x did not power off; trying emulator ports\n",
			acpi.pm1a_cnt);
	}
	outw(QEMU_PM1A_CNT, EMU_S5_VALUE);
	outw(BOCHS_PM1A_CNT, EMU_S5_VALUE);
	for (const char *p = shutdown; *p; p++)
		outb(BOCHS_SHUTDOWN_PORT, (u8)*p);
	mdelay(10);
}

/* An IDT with limit 0: the next exception cannot be delivered, which ends in
 * a triple fault, i.e. a CPU reset (SDM Vol. 3A 6.15 "Exception and Interrupt
 * Reference", Interrupt 8 "Double Fault Exception"). */
static __noreturn void triple_fault(void)
{
	static const struct {
		u16 limit;
		u64 base;
	} __packed null_idt = { 0, 0 };

	__asm__ volatile("lidt %0; int3" ::"m"(null_idt));
	for (;;)
		hlt();
}

void acpi_reboot(void)
{
	u64 dl;

	cli();
	/* ACPI 6.4 4.8.3.6 "Reset Register". */
	if (acpi.reset_port) {
		outb(acpi.reset_port, acpi.reset_value);
		mdelay(50);
	}
	/* Wait (bounded) for the 8042's input buffer to drain, then pulse reset. */
	dl = deadline_after_us(100000);
	while ((inb(I8042_STATUS) & I8042_STATUS_IBF) && !deadline_passed(dl))
		cpu_relax();
	outb(I8042_STATUS, I8042_CMD_RESET);
	mdelay(50);
	triple_fault();
}
