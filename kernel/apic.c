/*
 * The host's local APIC (kernel/apic.h). One driver for both register
 * interfaces: xAPIC memory-mapped registers (SDM Vol. 3A 11.4.1 "The Local
 * APIC Block Diagram", Table 11-1) or x2APIC MSRs (11.12 "Extended XAPIC
 * (x2APIC)", Table 11-6), chosen once on the boot CPU. Any CPU, host context;
 * the registers are the CPU's own, so no lock.
 */
#include "kernel/apic.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

#define APIC_BASE_EXTD BIT(10) /* x2APIC mode, SDM Vol. 3A 11.12.1 */
#define APIC_BASE_EN BIT(11)

/* xAPIC register offsets; x2APIC MSR = 0x800 + offset / 16. */
#define XAPIC_ID 0x20
#define XAPIC_EOI 0xB0
#define XAPIC_SVR 0xF0
#define XAPIC_ICR_LO 0x300
#define XAPIC_ICR_HI 0x310
#define XAPIC_LVT_TIMER 0x320
#define XAPIC_TIMER_INIT 0x380
#define XAPIC_TIMER_CUR 0x390
#define XAPIC_TIMER_DIV 0x3E0
#define X2APIC_MSR(off) (0x800 + (off) / 16)
#define APIC_LVT_MASKED BIT(16)
#define APIC_TIMER_DIV_16 0x3 /* 11.5.4 "APIC Timer", Figure 11-10 */
#define APIC_SVR_ENABLE BIT(8)

static volatile u8 *xapic;
static bool x2apic, ready;
static u64 timer_per_ms; /* timer counts (bus clock / 16) per millisecond */
static u32 timer_vector;

static u32 apic_read(u32 off)
{
	if (x2apic)
		return (u32)rdmsr(X2APIC_MSR(off));
	return mmio_read32(xapic + off);
}

static void apic_write(u32 off, u32 v)
{
	if (x2apic)
		wrmsr(X2APIC_MSR(off), v);
	else
		mmio_write32(xapic + off, v);
}

/* The mode the boot CPU chose, and the APIC software-enabled (SVR bit 8),
 * SDM Vol. 3A 11.4.7.2 "Local APIC State After It Has Been Software
 * Disabled": an AP comes out of INIT with it off. */
static void enable_this_cpu(void)
{
	u64 base = rdmsr(MSR_IA32_APICBASE);

	if (x2apic && !(base & APIC_BASE_EXTD))
		wrmsr(MSR_IA32_APICBASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
	apic_write(XAPIC_SVR, APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
}

int apic_init(u64 phys)
{
	u32 a, b, c, d;

	cpuid(1, &a, &b, &c, &d);
	if (!(d & BIT(9))) /* CPUID.1:EDX.APIC */
		return -ENODEV;
	x2apic = c & BIT(21); /* CPUID.1:ECX.x2APIC */
	if (!x2apic) {
		if (!phys)
			phys = rdmsr(MSR_IA32_APICBASE) & ~0xFFFULL;
		xapic = ioremap(phys, PAGE_SIZE);
		if (!xapic)
			return -ENOMEM;
	}
	enable_this_cpu();
	ready = true;
	pr_info("apic: %s, boot CPU's APIC id %u", x2apic ? "x2APIC (MSRs)" : "xAPIC (MMIO)",
		apic_id());
	return 0;
}

void apic_init_ap(void) { enable_this_cpu(); }
bool apic_ready(void) { return ready; }
bool apic_x2apic(void) { return x2apic; }

u32 apic_id(void)
{
	/* x2APIC: the whole 32-bit ID; xAPIC: bits 31:24 (11.4.6 "Local APIC ID"). */
	return x2apic ? apic_read(XAPIC_ID) : apic_read(XAPIC_ID) >> 24;
}

void apic_eoi(void) { apic_write(XAPIC_EOI, 0); }

/* The timer counts the bus clock divided by 16, the same on every CPU of the
 * machine: measured once against the TSC (ticks()) over 10 ms, one-shot mode,
 * masked. SDM Vol. 3A 11.5.4 "APIC Timer". */
void apic_timer_calibrate(void)
{
	u32 left;

	if (!ready)
		return;
	apic_write(XAPIC_TIMER_DIV, APIC_TIMER_DIV_16);
	apic_write(XAPIC_LVT_TIMER, APIC_LVT_MASKED);
	apic_write(XAPIC_TIMER_INIT, 0xFFFFFFFFu);
	mdelay(10);
	left = apic_read(XAPIC_TIMER_CUR);
	apic_write(XAPIC_TIMER_INIT, 0);
	timer_per_ms = (0xFFFFFFFFu - left) / 10;
	pr_info("apic: timer %lu kHz (bus clock / 16)", timer_per_ms);
}

void apic_timer_init(u32 vector)
{
	timer_vector = vector;
	apic_write(XAPIC_TIMER_DIV, APIC_TIMER_DIV_16);
	apic_write(XAPIC_TIMER_INIT, 0);
	apic_write(XAPIC_LVT_TIMER, vector); /* one-shot, unmasked, fixed */
}

void apic_timer_at(u64 at)
{
	u64 now = ticks(), count;

	if (!timer_per_ms || !timer_vector)
		return;
	count = at > now ? (at - now) * timer_per_ms / 1000 + 1 : 1;
	/* Writing the initial count (re)starts the one-shot countdown. */
	apic_write(XAPIC_TIMER_INIT, count > 0xFFFFFFFFu ? 0xFFFFFFFFu : (u32)count);
}

int apic_send(u32 dest, u32 icr)
{
	u64 dl;

	if (x2apic) {
		/* One 64-bit write, destination in 63:32; no delivery status
		 * to wait for (11.12.9 "ICR Operation in x2APIC Mode"). */
		wrmsr(X2APIC_MSR(XAPIC_ICR_LO), ((u64)dest << 32) | icr);
		return 0;
	}
	mmio_write32(xapic + XAPIC_ICR_HI, dest << 24);
	mmio_write32(xapic + XAPIC_ICR_LO, icr);
	dl = deadline_after_us(10000);
	while (mmio_read32(xapic + XAPIC_ICR_LO) & APIC_ICR_BUSY) {
		if (deadline_passed(dl))
			return -ETIMEDOUT;
		cpu_relax();
	}
	return 0;
}
