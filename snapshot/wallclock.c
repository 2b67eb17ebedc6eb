/*
 * Wall-clock time for the snapshot catalog, read from the PC's CMOS RTC
 * (MC146818): the time of a save as Unix seconds. Kernel only; host context,
 * polled with a deadline.
 */
#include "kernel/lib.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "snapshot/snap.h"

/* MC146818 registers (the PC's CMOS RTC): 0x00 seconds, 0x02 minutes, 0x04
 * hours, 0x07 day, 0x08 month, 0x09 year; status A bit 7 = update in progress,
 * status B bit 2 = binary (else BCD), bit 1 = 24-hour mode (else bit 7 of the
 * hour is PM). */
static u8 cmos_read(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static u32 bcd(u8 v, bool binary) { return binary ? v : (v & 0x0F) + (v >> 4) * 10; }

u64 snap_wallclock(void)
{
	u8 now[6], again[6], regs[6] = { 0x00, 0x02, 0x04, 0x07, 0x08, 0x09 };
	u64 dl = deadline_after_us(20000); /* an update takes at most 2 ms */
	u8 b;
	u32 hour;
	bool binary;

	/* Read until two reads, both outside an update, agree. */
	for (;;) {
		while (cmos_read(0x0A) & 0x80)
			if (deadline_passed(dl))
				return 0;
		for (int i = 0; i < 6; i++)
			now[i] = cmos_read(regs[i]);
		for (int i = 0; i < 6; i++)
			again[i] = cmos_read(regs[i]);
		if (!memcmp(now, again, sizeof(now)))
			break;
		if (deadline_passed(dl))
			return 0;
	}
	b = cmos_read(0x0B);
	binary = b & 0x04;
	hour = bcd(now[2] & 0x7F, binary);
	if (!(b & 0x02) && (now[2] & 0x80))
		hour = (hour % 12) + 12;
	else if (!(b & 0x02) && hour == 12)
		hour = 0;
	if (bcd(now[4], binary) < 1 || bcd(now[4], binary) > 12 || bcd(now[3], binary) < 1)
		return 0;
	return snap_unix_time(2000 + bcd(now[5], binary), bcd(now[4], binary), bcd(now[3], binary),
			      hour, bcd(now[1], binary), bcd(now[0], binary));
}
