/*
 * Monotonic time from the TSC, calibrated at boot against the 8254 PIT's
 * channel 2 (the one whose gate and output software can see on port 0x61).
 * A tick is one microsecond. Host context; ticks() is safe anywhere.
 * Intel 8254 datasheet "Mode 0: Interrupt on Terminal Count".
 */
#include "kernel/time.h"
#include "kernel/printk.h"
#include "kernel/x86.h"

#define PIT_HZ 1193182ULL
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_61 0x61
#define CALIBRATE_MS 20

static u64 tsc_boot;
static u64 hz;
static u64 mult; /* microseconds per TSC cycle, as a 32.32 fixed-point fraction */

/* Counts TSC cycles while PIT channel 2 counts down `ms` milliseconds. */
static u64 pit_measure(unsigned ms)
{
	u16 count = (u16)(PIT_HZ * ms / 1000);
	u64 start, end;
	u8 p61 = inb(PORT_61);
	long guard = 100000000; /* a PIT that never fires must not hang the boot */

	outb(PORT_61, (p61 & ~0x02) | 0x01); /* gate on, speaker off */
	outb(PIT_CMD, 0xB0);		     /* channel 2, lobyte/hibyte, mode 0 */
	outb(PIT_CH2, count & 0xFF);
	outb(PIT_CH2, count >> 8);
	start = rdtsc();
	while (!(inb(PORT_61) & 0x20) && --guard)
		;
	end = rdtsc();
	outb(PORT_61, p61);
	return guard ? end - start : 0;
}

void time_init(void)
{
	u64 cycles;

	tsc_boot = rdtsc();
	cycles = pit_measure(CALIBRATE_MS);
	if (!cycles) {
		/* No PIT: assume 1 GHz so timeouts still end; say so. */
		hz = 1000000000ULL;
		pr_warn("PIT did not count; assuming a 1 GHz TSC");
	} else {
		hz = cycles * 1000 / CALIBRATE_MS;
	}
	mult = (TICKS_PER_SEC << 32) / hz;
}

u64 ticks(void)
{
	if (!mult)
		return 0;
	return (u64)(((unsigned __int128)(rdtsc() - tsc_boot) * mult) >> 32);
}

u64 tsc_hz(void) { return hz; }

void udelay(u64 us)
{
	u64 end = ticks() + us;

	while (ticks() < end)
		cpu_relax();
}

void mdelay(u64 ms) { udelay(ms * 1000); }
