/*
 * The MC146818A real-time clock and CMOS memory at 0x70/0x71: the time and
 * date (binary or BCD, 12 or 24 hours, per register B) from the host's wall
 * clock when the VM was made (else a fixed epoch) plus guest time, the update-in-progress flag, registers A-D, the
 * periodic, alarm and update-ended interrupts on IRQ 8 (register C read to
 * clear), the NMI mask bit of port 0x70, the battery-backed bytes 0x0E-0x7F
 * (a reset keeps them) and the memory-size bytes of the PC/AT map. Nothing is
 * stepped: the clock, the flags and the line are computed from the guest TSC.
 * MC146818A datasheet, "Address Map", "Register A" .. "Register D", "Update
 * Cycle", "Interrupts"; IBM PC/AT Technical Reference, "CMOS RAM Address Map".
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_CMOS_INDEX 0x70
#define PORT_CMOS_DATA 0x71

/* A new VM's clock starts at the host's wall clock, or at 2025-01-01
 * 00:00:00 (what Amber's RTC showed before) when the host's is unknown. */
#define RTC_EPOCH 1735689600ULL
#define RTC_LAST 4102444799ULL /* 2099-12-31 23:59:59: the century byte's range */
#define RTC_BASE_HZ 32768ULL   /* the time base register A selects, DV = 010 */
#define RTC_UIP_US 244	       /* UIP rises this long before each update */

#define REG_SEC 0x00
#define REG_SEC_ALARM 0x01
#define REG_MIN 0x02
#define REG_MIN_ALARM 0x03
#define REG_HOUR 0x04
#define REG_HOUR_ALARM 0x05
#define REG_DOW 0x06
#define REG_DAY 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0A
#define REG_B 0x0B
#define REG_C 0x0C
#define REG_D 0x0D
#define REG_CENTURY 0x32

#define A_UIP 0x80
#define A_DV_MASK 0x70
#define A_DV_32K 0x20
#define A_RS_MASK 0x0F
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_SQWE 0x08
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80
#define HOUR_PM 0x80
#define ALARM_DONT_CARE 0xC0
#define CLAMP(v, lo, hi) MIN(MAX((v), (lo)), (hi))

struct vcmos {
	/* Battery-backed (struct vdev keep_size): a reset keeps these. */
	u8 ram[128];   /* by index; 0x00-0x09 and 0x32 are a shadow while stopped */
	u64 div_tsc;   /* guest TSC at which the divider chain's second began */
	u64 epoch_off; /* clock seconds = epoch_off + whole seconds since div_tsc */
	u64 seen_tsc;  /* the flags are current up to this guest TSC */
	u8 valid;      /* set up once at power-on */
	u8 pad[7];
	/* Reset to zero. */
	u8 index;
	u8 nmi_mask;  /* port 0x70 bit 7 */
	u8 flags;     /* register C: PF, AF, UF (IRQF is computed) */
	u8 irq;	      /* IRQ 8 as last driven */
	u64 alarm_at; /* cached: clock seconds of the next alarm match, 0 unknown */
};

#define CMOS_KEEP offsetof(struct vcmos, index)

/* ---- the calendar (proleptic Gregorian, days since 1970-01-01) ---------- */

struct rtc_time {
	u32 year, month, day, hour, min, sec, dow; /* month 1-12, day 1-31, dow 1 = Sunday */
};

static bool leap(u32 y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static u32 month_days(u32 y, u32 m)
{
	static const u8 days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return days[m - 1] + (m == 2 && leap(y));
}

static u64 days_before_year(u32 y)
{
	u64 d = 0;

	for (u32 i = 1970; i < y; i++)
		d += leap(i) ? 366 : 365;
	return d;
}

static u64 rtc_to_secs(const struct rtc_time *t)
{
	u64 days = days_before_year(t->year);

	for (u32 m = 1; m < t->month; m++)
		days += month_days(t->year, m);
	days += t->day - 1;
	return days * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
}

static void rtc_from_secs(u64 secs, struct rtc_time *t)
{
	u64 days = secs / 86400, rest = secs % 86400;

	t->hour = (u32)(rest / 3600);
	t->min = (u32)(rest / 60 % 60);
	t->sec = (u32)(rest % 60);
	t->dow = (u32)((days + 4) % 7) + 1; /* 1970-01-01 was a Thursday */
	for (t->year = 1970; days >= (leap(t->year) ? 366u : 365u); t->year++)
		days -= leap(t->year) ? 366 : 365;
	for (t->month = 1; days >= month_days(t->year, t->month); t->month++)
		days -= month_days(t->year, t->month);
	t->day = (u32)days + 1;
}

/* ---- register encoding per register B ---------------------------------- */

static u8 enc(const struct vcmos *c, u32 v)
{
	return c->ram[REG_B] & B_DM_BINARY ? (u8)v : (u8)((v / 10 % 10) << 4 | v % 10);
}

static u32 dec(const struct vcmos *c, u8 v)
{
	return c->ram[REG_B] & B_DM_BINARY ? v : (u32)(v >> 4) * 10 + (v & 0x0F);
}

static u8 enc_hour(const struct vcmos *c, u32 h)
{
	u32 h12 = h % 12 ? h % 12 : 12;

	if (c->ram[REG_B] & B_24H)
		return enc(c, h);
	return (u8)(enc(c, h12) | (h >= 12 ? HOUR_PM : 0));
}

static u32 dec_hour(const struct vcmos *c, u8 v)
{
	if (c->ram[REG_B] & B_24H)
		return dec(c, v);
	return dec(c, v & 0x7F) % 12 + (v & HOUR_PM ? 12 : 0);
}

/* The clock registers of `secs` into regs (by index), in the current mode. */
static void encode_time(const struct vcmos *c, u64 secs, u8 *regs)
{
	struct rtc_time t = { 0 };

	rtc_from_secs(secs, &t);
	regs[REG_SEC] = enc(c, t.sec);
	regs[REG_MIN] = enc(c, t.min);
	regs[REG_HOUR] = enc_hour(c, t.hour);
	regs[REG_DOW] = enc(c, t.dow);
	regs[REG_DAY] = enc(c, t.day);
	regs[REG_MONTH] = enc(c, t.month);
	regs[REG_YEAR] = enc(c, t.year % 100);
	regs[REG_CENTURY] = enc(c, t.year / 100);
}

/* The time the registers in regs say, values no calendar has clamped into
 * range (a guest may write anything; the day of week is derived). */
static u64 decode_time(const struct vcmos *c, const u8 *regs)
{
	u32 century = dec(c, regs[REG_CENTURY]);
	struct rtc_time t = { 0 };

	t.year = (century == 19 || century == 20 ? century : 20) * 100 +
		 MIN(dec(c, regs[REG_YEAR]), 99u);
	if (t.year < 1970)
		t.year = 1970;
	t.month = CLAMP(dec(c, regs[REG_MONTH]), 1u, 12u);
	t.day = CLAMP(dec(c, regs[REG_DAY]), 1u, month_days(t.year, t.month));
	t.hour = MIN(dec_hour(c, regs[REG_HOUR]), 23u);
	t.min = MIN(dec(c, regs[REG_MIN]), 59u);
	t.sec = MIN(dec(c, regs[REG_SEC]), 59u);
	return rtc_to_secs(&t);
}

/* ---- time -------------------------------------------------------------- */

static bool running(const struct vcmos *c)
{
	return !(c->ram[REG_B] & B_SET) && (c->ram[REG_A] & A_DV_MASK) == A_DV_32K;
}

/* Whole seconds of the divider since div_tsc at guest TSC tsc. */
static u64 ksec(struct vm *vm, const struct vcmos *c, u64 tsc)
{
	return tsc > c->div_tsc ? (tsc - c->div_tsc) / vdev_tsc_hz(vm) : 0;
}

static u64 clock_secs(struct vm *vm, const struct vcmos *c, u64 tsc)
{
	return c->epoch_off + ksec(vm, c, tsc);
}

/* Ticks of the 32.768 kHz time base since div_tsc. */
static u64 ticks32k(struct vm *vm, const struct vcmos *c, u64 tsc)
{
	return tsc > c->div_tsc ? vdev_scale(tsc - c->div_tsc, RTC_BASE_HZ, vdev_tsc_hz(vm)) : 0;
}

/* The periodic interrupt's period in time-base ticks ("Register A", table
 * "Periodic Interrupt Rate"), 0 when RS selects none. */
static u64 periodic_ticks(const struct vcmos *c)
{
	unsigned rs = c->ram[REG_A] & A_RS_MASK;

	if (!rs)
		return 0;
	return rs <= 2 ? 64ULL << rs : 1ULL << (rs - 1);
}

/* The alarm compares register bytes ("Interrupts"): seconds, minutes and
 * hours as the clock shows them, a byte with its two top bits set matching
 * any value. */
static bool alarm_match(const struct vcmos *c, u64 secs)
{
	u64 tod = secs % 86400;
	u8 shown[3] = { enc(c, (u32)(tod % 60)), enc(c, (u32)(tod / 60 % 60)),
			enc_hour(c, (u32)(tod / 3600)) };
	static const u8 alarm_reg[3] = { REG_SEC_ALARM, REG_MIN_ALARM, REG_HOUR_ALARM };

	for (int i = 0; i < 3; i++) {
		u8 a = c->ram[alarm_reg[i]];

		if ((a & ALARM_DONT_CARE) != ALARM_DONT_CARE && a != shown[i])
			return false;
	}
	return true;
}

/* The first clock second after `from` that the alarm matches, ~0 when none
 * in a day can (a day holds every hour, minute and second once). */
static u64 next_alarm(const struct vcmos *c, u64 from)
{
	for (u64 k = 1; k <= 86400; k++)
		if (alarm_match(c, from + k))
			return from + k;
	return ~0ULL;
}

static void drive_irq(struct vm *vm, struct vcmos *c)
{
	u8 on = c->ram[REG_B] & c->flags & (B_PIE | B_AIE | B_UIE) ? 1 : 0;

	if (on != c->irq) {
		c->irq = on;
		vm_set_irq(vm, PLAT_IRQ_RTC, on);
	}
}

/* Brings PF, UF and AF up to guest TSC `tsc` ("Interrupts": each flag is set
 * when its event happens, whatever the enables say) and drives IRQ 8. */
static void cmos_sync(struct vm *vm, void *st, u64 tsc)
{
	struct vcmos *c = st;
	u64 period = periodic_ticks(c);

	if (tsc <= c->seen_tsc) {
		drive_irq(vm, c);
		return;
	}
	if ((c->ram[REG_A] & A_DV_MASK) == A_DV_32K && period &&
	    ticks32k(vm, c, tsc) / period > ticks32k(vm, c, c->seen_tsc) / period)
		c->flags |= C_PF;
	if (running(c)) {
		u64 from = clock_secs(vm, c, c->seen_tsc), to = clock_secs(vm, c, tsc);

		if (to > from) {
			c->flags |= C_UF;
			if (!c->alarm_at || c->alarm_at <= from)
				c->alarm_at = next_alarm(c, from);
			if (c->alarm_at <= to) {
				c->flags |= C_AF;
				c->alarm_at = 0;
			}
		}
	}
	c->seen_tsc = tsc;
	drive_irq(vm, c);
}

/* The guest TSC of the next event whose flag would raise IRQ 8. */
static u64 cmos_deadline(struct vm *vm, void *st)
{
	struct vcmos *c = st;
	u8 b = c->ram[REG_B];
	u64 hz = vdev_tsc_hz(vm), period = periodic_ticks(c), first = ~0ULL;

	if (c->irq)
		return ~0ULL; /* nothing changes the line until register C is read */
	if ((b & B_PIE) && period && (c->ram[REG_A] & A_DV_MASK) == A_DV_32K) {
		u64 n = (ticks32k(vm, c, c->seen_tsc) / period + 1) * period;

		first = c->div_tsc + vdev_scale(n, hz, RTC_BASE_HZ) + 1;
	}
	if ((b & B_UIE) && running(c))
		first = MIN(first, c->div_tsc + (ksec(vm, c, c->seen_tsc) + 1) * hz);
	if ((b & B_AIE) && running(c)) {
		u64 now = clock_secs(vm, c, c->seen_tsc);

		if (!c->alarm_at || c->alarm_at <= now)
			c->alarm_at = next_alarm(c, now);
		if (c->alarm_at != ~0ULL)
			first = MIN(first, c->div_tsc + (c->alarm_at - c->epoch_off) * hz);
	}
	return first;
}

/* ---- register access --------------------------------------------------- */

/* The registers that show the running clock (the alarms do not). */
static bool is_clock_reg(u8 index)
{
	return index == REG_SEC || index == REG_MIN || index == REG_HOUR ||
	       (index >= REG_DOW && index <= REG_YEAR) || index == REG_CENTURY;
}

static u8 cmos_read(struct vcpu *v, struct vcmos *c, u8 index, u64 tsc)
{
	struct vm *vm = v->vm;
	u64 ext_kib = vm->mem_size > MiB(1) ? (vm->mem_size - MiB(1)) >> 10 : 0;
	u64 above16 = vm->mem_size > MiB(16) ? (vm->mem_size - MiB(16)) >> 16 : 0;
	u64 hz = vdev_tsc_hz(vm);
	u8 regs[128], val;

	if (is_clock_reg(index) && running(c)) {
		encode_time(c, clock_secs(vm, c, tsc), regs);
		return regs[index];
	}
	switch (index) {
	case REG_A: /* UIP: the last 244 us of each second ("Update Cycle") */
		val = c->ram[REG_A] & ~A_UIP;
		if (running(c) && tsc > c->div_tsc &&
		    (tsc - c->div_tsc) % hz >= hz - vdev_scale(RTC_UIP_US, hz, 1000000))
			val |= A_UIP;
		return val;
	case REG_C:
		val = c->flags | (c->ram[REG_B] & c->flags & (B_PIE | B_AIE | B_UIE) ? C_IRQF : 0);
		c->flags = 0;
		drive_irq(vm, c);
		return val;
	case REG_D:
		return D_VRT;
	case 0x15: /* base memory in KiB */
		return 640 & 0xFF;
	case 0x16:
		return 640 >> 8;
	case 0x17: /* extended memory in KiB, two copies */
	case 0x30:
		return (u8)MIN(ext_kib, 0xFFFFULL);
	case 0x18:
	case 0x31:
		return (u8)(MIN(ext_kib, 0xFFFFULL) >> 8);
	case 0x34: /* memory above 16 MiB in 64 KiB units */
		return (u8)MIN(above16, 0xFFFFULL);
	case 0x35:
		return (u8)(MIN(above16, 0xFFFFULL) >> 8);
	default:
		return c->ram[index];
	}
}

/* Stops or restarts the clock around a change of SET or the divider: a
 * stopped clock's time lives in the shadow registers, where the guest sets
 * it; a restarted one counts on from them. The divider leaving reset starts
 * its first second half a second later ("Register A", DV2-0). */
static void clock_change(struct vm *vm, struct vcmos *c, u8 a, u8 b, u64 tsc)
{
	bool was = running(c), dv_was = (c->ram[REG_A] & A_DV_MASK) == A_DV_32K;

	if (was)
		encode_time(c, clock_secs(vm, c, tsc), c->ram);
	c->ram[REG_A] = a & ~A_UIP;
	c->ram[REG_B] = b;
	if ((a & A_DV_MASK) == A_DV_32K && !dv_was)
		c->div_tsc = tsc > vdev_tsc_hz(vm) / 2 ? tsc - vdev_tsc_hz(vm) / 2 : 0;
	if (!was && running(c))
		c->epoch_off = decode_time(c, c->ram) - ksec(vm, c, tsc);
	c->alarm_at = 0;
}

static void cmos_write(struct vcpu *v, struct vcmos *c, u8 index, u8 val, u64 tsc)
{
	struct vm *vm = v->vm;
	u8 regs[128];
	u64 now;

	switch (index) {
	case REG_A:
		clock_change(vm, c, val, c->ram[REG_B], tsc);
		break;
	case REG_B:
		/* SET stops the updates; with it the 24-hour and binary modes
		 * change only how the registers show the time. */
		clock_change(vm, c, c->ram[REG_A], val, tsc);
		break;
	case REG_C:
	case REG_D:
	case 0x15 ... 0x18:
	case 0x30:
	case 0x31:
	case 0x34:
	case 0x35:
		break; /* read-only */
	default:
		if (is_clock_reg(index) && running(c)) {
			/* Set while counting: the second keeps its phase. */
			now = clock_secs(vm, c, tsc);
			encode_time(c, now, regs);
			regs[index] = val;
			c->epoch_off += decode_time(c, regs) - now;
		} else {
			c->ram[index] = val;
		}
		c->alarm_at = 0;
		break;
	}
}

static bool cmos_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vcmos *c = st;
	u64 tsc = vcpu_guest_tsc(v);

	if (port == PORT_CMOS_INDEX) {
		if (in) {
			*val = 0xFF;
		} else {
			c->index = *val & 0x7F;
			c->nmi_mask = (*val & 0x80) ? 1 : 0;
		}
		return true;
	}
	cmos_sync(v->vm, c, tsc); /* flags first: a change of register B acts after */
	if (in)
		*val = cmos_read(v, c, c->index, tsc);
	else
		cmos_write(v, c, c->index, (u8)*val, tsc);
	cmos_sync(v->vm, c, tsc);
	return true;
}

/* First power-on: the clock at `secs`, counting from guest TSC 0. */
static void power_on(struct vcmos *c, u64 secs)
{
	memset(c, 0, CMOS_KEEP);
	c->ram[REG_A] = A_DV_32K | 0x06; /* 32.768 kHz, 1024 Hz periodic rate */
	c->ram[REG_B] = B_24H;		 /* BCD, 24-hour, no interrupts */
	c->epoch_off = secs;
	c->valid = 1;
}

/* A reset keeps the battery-backed part; the chip's RESET input clears the
 * interrupt enables and flags ("RESET" pin). */
static void cmos_reset(struct vm *vm, void *st)
{
	struct vcmos *c = st;

	u64 wall = vmm_wallclock();

	if (!c->valid)
		power_on(c, wall >= RTC_EPOCH && wall <= RTC_LAST ? wall : RTC_EPOCH);
	c->ram[REG_B] &= ~(B_PIE | B_AIE | B_UIE | B_SQWE);
}

/* The record: index and NMI mask, flags, line, the divider's TSC and clock
 * offset, the flags' TSC, then the 128 bytes. Version 1 held the index only:
 * its clock counted from guest TSC 0 at the epoch, as power_on() sets it. */
static int cmos_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vcmos *c = st;

	if (!r->enc && version < 2)
		power_on(c, RTC_EPOCH);
	REC(r, 0x00, c->index);
	if (version >= 2) {
		REC(r, 0x01, c->nmi_mask);
		REC(r, 0x02, c->flags);
		REC(r, 0x03, c->irq);
		REC(r, 0x08, c->div_tsc);
		REC(r, 0x10, c->epoch_off);
		REC(r, 0x18, c->seen_tsc);
		REC_BYTES(r, 0x20, c->ram);
	}
	if (r->enc)
		return 0;
	c->alarm_at = 0;
	c->valid = 1;
	if (version < 2) {
		c->index &= 0x7F;
		c->nmi_mask = 0;
		c->flags = 0;
		c->irq = 0;
		return 0;
	}
	if (c->index > 0x7F || c->nmi_mask > 1 || (c->flags & ~(C_PF | C_AF | C_UF)) ||
	    c->irq > 1) {
		*why = "MC146818 register values no chip can hold";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_cmos = {
	.id = VDEV_CMOS,
	.version = 2,
	.record_size = 0xA0,
	.state_size = sizeof(struct vcmos),
	.keep_size = CMOS_KEEP,
	.ports = { { PORT_CMOS_INDEX, 2 } },
	.reset = cmos_reset,
	.io = cmos_io,
	.sync = cmos_sync,
	.deadline = cmos_deadline,
	.state = cmos_state,
};
