/*
 * Host unit test of the PC platform devices that keep time or raise
 * interrupts on their own: the MC146818 RTC (calendar in BCD, binary and 12
 * hours, setting the clock, UIP window, periodic/update/alarm flags, IRQ 8,
 * deadlines, what a reset keeps), the ACPI PM timer and PM1 registers (count
 * against the TSC, TMR_STS and the SCI, S5), the 16550's interrupts (IIR
 * priority, THRE clearing, trigger levels, timeout, OUT2) and their records:
 * garbage refused, older versions decoded. The guest TSC is moved by hand.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/printk.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

/* ---- host stand-ins for the kernel functions the devices call ---------- */
static char out[4096];
static u64 guest_tsc_now;
static int power_offs, resets;

void printk(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
}

void vm_stop(struct vm *vm, const char *fmt, ...) { vm->state = VM_STOPPED; }
void vm_request_reset(struct vm *vm, const char *how) { resets++; }

void vm_power_off(struct vm *vm, const char *how)
{
	power_offs++;
	vm->state = VM_OFF;
}

void panic(const char *fmt, ...)
{
	fprintf(stderr, "panic: %s\n", fmt);
	abort();
}

void *kmalloc(size_t size) { return malloc(size); }
void *kzalloc(size_t size) { return calloc(1, size); }
void kfree(void *p) { free(p); }
u64 vcpu_guest_tsc(struct vcpu *v) { return guest_tsc_now; }
static u64 wall_now; /* 0: unknown, the epoch */
u64 vmm_wallclock(void) { return wall_now; }
void vcpu_kick(struct vcpu *v) { v->kicked = true; }
void vm_kick(struct vm *m) {}

#define HZ 1000000000ULL /* guest TSC: 1 GHz, a tick per nanosecond */
#define MS 1000000ULL

static struct vm vm;
static struct vcpu vcpu = { .vm = &vm };

static u32 io_sz(u16 port, u8 size, bool in, u32 val)
{
	vdev_io(&vcpu, port, size, in, &val);
	return val;
}

static u32 io(u16 port, bool in, u32 val) { return io_sz(port, 1, in, val); }

static u8 cmos(u8 index)
{
	io(0x70, false, index);
	return (u8)io(0x71, true, 0);
}

static void cmos_set(u8 index, u8 val)
{
	io(0x70, false, index);
	io(0x71, false, val);
}

/* Both 8259As initialized, edge triggered, everything masked: the IRR shows
 * the lines' requests. */
static void pic_init(void)
{
	static const u8 seq[] = { 0x11, 0x20, 0x04, 0x01 };

	for (int i = 0; i < 4; i++) {
		io(i ? 0x21 : 0x20, false, seq[i]);
		io(i ? 0xA1 : 0xA0, false, i == 1 ? 0x28 : i == 2 ? 0x02 : seq[i]);
	}
	io(0x21, false, 0xFF);
	io(0xA1, false, 0xFF);
	io(0x4D0, false, 0x10); /* IRQ 4, 8 and 9 level: IRR follows the lines */
	io(0x4D1, false, 0x03);
}

static u16 irr(void)
{
	io(0x20, false, 0x0A);
	io(0xA0, false, 0x0A);
	return (u16)(io(0x20, true, 0) | io(0xA0, true, 0) << 8);
}

static void fresh(void)
{
	vdev_free_all(&vm);
	memset(&vm, 0, sizeof(vm));
	vm.id = 2;
	vm.guest_tsc_hz = HZ;
	vm.mem_size = MiB(32);
	vm.state = VM_RUNNING;
	guest_tsc_now = 0;
	CHECK_EQ(vdev_alloc_all(&vm), 0);
	pic_init();
}

/* ---- RTC ----------------------------------------------------------------- */
static void test_rtc_calendar(void)
{
	fresh();
	/* Power-on: 2025-01-01 00:00:00, a Wednesday, BCD, 24 hours. */
	CHECK_EQ(cmos(0x0A), 0x26);
	CHECK_EQ(cmos(0x0B), 0x02);
	CHECK_EQ(cmos(0x0D), 0x80);
	CHECK_EQ(cmos(0x09), 0x25);
	CHECK_EQ(cmos(0x32), 0x20);
	CHECK_EQ(cmos(0x08), 0x01);
	CHECK_EQ(cmos(0x07), 0x01);
	CHECK_EQ(cmos(0x06), 4);
	/* 13:46:39.5 later. */
	guest_tsc_now = (13 * 3600 + 46 * 60 + 39) * HZ + HZ / 2;
	CHECK_EQ(cmos(0x04), 0x13);
	CHECK_EQ(cmos(0x02), 0x46);
	CHECK_EQ(cmos(0x00), 0x39);
	/* Binary, then 12-hour BCD (PM in bit 7), then 12-hour binary. */
	cmos_set(0x0B, 0x06);
	CHECK_EQ(cmos(0x04), 13);
	CHECK_EQ(cmos(0x00), 39);
	cmos_set(0x0B, 0x00);
	CHECK_EQ(cmos(0x04), 0x81);
	cmos_set(0x0B, 0x04);
	CHECK_EQ(cmos(0x04), 0x81);
	guest_tsc_now += 11 * 3600 * HZ; /* 00:46 the next day: 12 AM */
	CHECK_EQ(cmos(0x04), 12);
	cmos_set(0x0B, 0x00);
	CHECK_EQ(cmos(0x04), 0x12);
	CHECK_EQ(cmos(0x07), 0x02);
	cmos_set(0x0B, 0x02);

	/* Set the clock as Linux does (SET, the registers, SET off): the eve
	 * of a leap day, which must come next, then March. */
	cmos_set(0x0B, 0x82);
	CHECK_EQ(cmos(0x0A) & 0x80, 0); /* no UIP while SET */
	cmos_set(0x32, 0x20);
	cmos_set(0x09, 0x24);
	cmos_set(0x08, 0x02);
	cmos_set(0x07, 0x28);
	cmos_set(0x04, 0x23);
	cmos_set(0x02, 0x59);
	cmos_set(0x00, 0x58);
	guest_tsc_now += 5 * HZ; /* stopped: no time passes */
	CHECK_EQ(cmos(0x00), 0x58);
	cmos_set(0x0B, 0x02);
	CHECK_EQ(cmos(0x00), 0x58);
	guest_tsc_now += 2 * HZ;
	CHECK_EQ(cmos(0x07), 0x29);
	CHECK_EQ(cmos(0x08), 0x02);
	CHECK_EQ(cmos(0x04), 0x00);
	CHECK_EQ(cmos(0x06), 5); /* 2024-02-29: a Thursday */
	guest_tsc_now += 86400 * HZ;
	CHECK_EQ(cmos(0x07), 0x01);
	CHECK_EQ(cmos(0x08), 0x03);
	/* A year that is not leap: 2100 would be, 2023 is not. */
	cmos_set(0x09, 0x23);
	CHECK_EQ(cmos(0x09), 0x23);
	cmos_set(0x08, 0x02);
	cmos_set(0x07, 0x28);
	guest_tsc_now += 86400 * HZ;
	CHECK_EQ(cmos(0x08), 0x03);
	CHECK_EQ(cmos(0x07), 0x01);
	/* A byte written while the clock runs keeps the second's phase. */
	cmos_set(0x02, 0x10);
	CHECK_EQ(cmos(0x02), 0x10);
	/* Garbage written under SET is clamped, not trusted. */
	cmos_set(0x0B, 0x82);
	cmos_set(0x08, 0x99);
	cmos_set(0x04, 0x77);
	cmos_set(0x0B, 0x02);
	CHECK_EQ(cmos(0x08), 0x12);
	CHECK_EQ(cmos(0x04), 0x23);

	/* A new VM starts at the host's wall clock: 2030-06-15 12:34:56 UTC. */
	wall_now = 1907757296;
	fresh();
	CHECK_EQ(cmos(0x09), 0x30);
	CHECK_EQ(cmos(0x08), 0x06);
	CHECK_EQ(cmos(0x07), 0x15);
	CHECK_EQ(cmos(0x04), 0x12);
	CHECK_EQ(cmos(0x02), 0x34);
	CHECK_EQ(cmos(0x00), 0x56);
	CHECK_EQ(cmos(0x06), 7);  /* a Saturday */
	wall_now = 4102444800ULL; /* 2100: past the century byte, the epoch */
	fresh();
	CHECK_EQ(cmos(0x09), 0x25);
	wall_now = 0;
}

static void test_rtc_uip_flags(void)
{
	u64 base;

	fresh();
	/* UIP: the last 244 us before each second. */
	base = 7 * HZ;
	guest_tsc_now = base - 300000;
	CHECK_EQ(cmos(0x0A), 0x26);
	guest_tsc_now = base - 243000;
	CHECK_EQ(cmos(0x0A), 0xA6);
	CHECK_EQ(cmos(0x00), 0x06); /* the update has not happened */
	guest_tsc_now = base;
	CHECK_EQ(cmos(0x0A), 0x26);
	CHECK_EQ(cmos(0x00), 0x07);

	/* Periodic at 1024 Hz (RS 6): PF per 976.5625 us, IRQF only with PIE. */
	(void)cmos(0x0C);
	guest_tsc_now += 900000;
	CHECK_EQ(cmos(0x0C), 0x00);
	guest_tsc_now += 100000;
	CHECK_EQ(cmos(0x0C), 0x40);
	CHECK_EQ(cmos(0x0C), 0x00); /* read to clear */
	cmos_set(0x0B, 0x42);
	CHECK_EQ(irr() & 0x100, 0);
	guest_tsc_now += 976563;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(irr() & 0x100);		     /* IRQ 8 */
	CHECK_EQ(vdev_deadline(&vm), ~0ULL); /* the line stays until C is read */
	CHECK_EQ(cmos(0x0C), 0xC0);
	{
		u64 dl = vdev_deadline(&vm);

		CHECK(dl > guest_tsc_now && dl <= guest_tsc_now + 976563);
	}
	/* 2 Hz (RS 15): 500 ms. */
	cmos_set(0x0A, 0x2F);
	(void)cmos(0x0C);
	guest_tsc_now = 20 * HZ + 100 * MS;
	(void)cmos(0x0C);
	guest_tsc_now += 350 * MS;
	CHECK_EQ(cmos(0x0C) & 0x40, 0);
	guest_tsc_now += 100 * MS;
	CHECK_EQ(cmos(0x0C) & 0x40, 0x40);

	/* Update-ended: UF after each second's update. */
	cmos_set(0x0A, 0x20);
	cmos_set(0x0B, 0x12);
	guest_tsc_now = 30 * HZ + 10 * MS;
	(void)cmos(0x0C);
	CHECK_EQ(vdev_deadline(&vm), 31 * HZ);
	guest_tsc_now = 31 * HZ;
	CHECK_EQ(cmos(0x0C), 0x90);

	/* Alarm at second 45, any minute and hour: AF once a minute. */
	cmos_set(0x01, 0x45);
	cmos_set(0x03, 0xC0);
	cmos_set(0x05, 0xFF);
	cmos_set(0x0B, 0x22);
	(void)cmos(0x0C);
	CHECK_EQ(vdev_deadline(&vm), 45 * HZ);
	guest_tsc_now = 44 * HZ;
	CHECK_EQ(cmos(0x0C) & 0x20, 0);
	guest_tsc_now = 45 * HZ;
	CHECK_EQ(cmos(0x0C), 0xB0);
	CHECK_EQ(vdev_deadline(&vm), 105 * HZ);
	/* Hour 3 only: the next 03:xx:45 (24 h clock). */
	cmos_set(0x05, 0x03);
	CHECK_EQ(vdev_deadline(&vm), (3 * 3600 + 45) * HZ);

	/* A reset keeps the clock and the battery-backed bytes, clears the
	 * interrupt enables and the flags. */
	cmos_set(0x40, 0x5A);
	io(0x70, false, 0x80 | 0x10); /* NMI masked */
	guest_tsc_now = 50 * HZ;
	vdev_sync(&vm, guest_tsc_now); /* as vm_reset_pending() does */
	vdev_reset_all(&vm);
	CHECK_EQ(cmos(0x40), 0x5A);
	CHECK_EQ(cmos(0x0B), 0x02);
	CHECK_EQ(cmos(0x00), 0x50);
	CHECK_EQ(cmos(0x0C), 0x00);
	/* The memory size bytes, as before. */
	CHECK_EQ(cmos(0x17), 31744 & 0xFF);
	cmos_set(0x17, 0);
	CHECK_EQ(cmos(0x17), 31744 & 0xFF);
}

/* ---- ACPI PM ------------------------------------------------------------- */
static void test_pm(void)
{
	fresh();
	/* 3.579545 MHz, 24 bits. */
	guest_tsc_now = HZ;
	CHECK_EQ(io_sz(0x608, 4, true, 0), 3579545);
	guest_tsc_now = 5 * HZ;
	CHECK_EQ(io_sz(0x608, 4, true, 0), (5 * 3579545) & 0xFFFFFF);
	CHECK_EQ(io_sz(0x608, 1, true, 0), (5 * 3579545) & 0xFF);
	CHECK_EQ(io_sz(0x60A, 2, true, 0), ((5 * 3579545) >> 16) & 0xFF);
	/* Bit 23 toggled twice by now: TMR_STS; write one to clear. */
	CHECK_EQ(io_sz(0x600, 2, true, 0), 0x0001);
	io_sz(0x600, 2, false, 0x0001);
	CHECK_EQ(io_sz(0x600, 2, true, 0), 0);
	/* TMR_EN and SCI_EN: the SCI on IRQ 9 at the next toggle. */
	io_sz(0x602, 2, false, 0x0001);
	io_sz(0x604, 2, false, 0x0001);
	CHECK_EQ(io_sz(0x602, 2, true, 0), 1);
	CHECK_EQ(io_sz(0x604, 2, true, 0), 1);
	{
		u64 next = (5 * 3579545ULL / (1 << 23) + 1) << 23;
		u64 dl = vdev_deadline(&vm);

		CHECK(dl > guest_tsc_now);
		CHECK_EQ(dl * 3579545ULL / HZ, next);
		CHECK_EQ((dl - 1) * 3579545ULL / HZ, next - 1);
		guest_tsc_now = dl - 1;
		vdev_sync(&vm, guest_tsc_now);
		CHECK_EQ(irr() & 0x200, 0);
		guest_tsc_now = dl;
		vdev_sync(&vm, guest_tsc_now);
		CHECK(irr() & 0x200);
		CHECK_EQ(vdev_deadline(&vm) <= dl, 0);
	}
	io_sz(0x600, 1, false, 0x01);
	CHECK_EQ(io_sz(0x600, 2, true, 0), 0);
	/* Bits no chipset has do not stick; the timer is read-only. */
	io_sz(0x602, 2, false, 0xFFFF);
	CHECK_EQ(io_sz(0x602, 2, true, 0), 0x0721);
	io_sz(0x608, 4, false, 0);
	CHECK(io_sz(0x608, 4, true, 0) != 0);
	CHECK(!vdev_io(&vcpu, 0x60B, 4, true, &(u32){ 0 }));
	/* Sleep types: S1 is refused with a note, S5 powers off. */
	io_sz(0x604, 2, false, 0x2000 | 1 << 10 | 1);
	CHECK_EQ(power_offs, 0);
	CHECK(strstr(out, "sleep type 1") != NULL);
	CHECK_EQ(io_sz(0x604, 2, true, 0), 0x0401); /* SLP_EN reads 0 */
	io_sz(0x604, 2, false, 0x2000);
	CHECK_EQ(power_offs, 1);
	CHECK_EQ(vm.state, VM_OFF);
}

/* ---- 16550 interrupts --------------------------------------------------- */
#define COM1 0x3F8

static u8 iir(void) { return (u8)io(COM1 + 2, true, 0); }

static void test_uart_interrupts(void)
{
	fresh();
	io(COM1 + 3, false, 0x80); /* 115200 baud */
	io(COM1, false, 1);
	io(COM1 + 1, false, 0);
	io(COM1 + 3, false, 0x03);
	io(COM1 + 2, false, 0x47); /* FIFO, trigger 4 */
	CHECK_EQ(iir(), 0xC1);
	/* THRE on enabling it: raised on IRQ 4 only with OUT2. */
	io(COM1 + 1, false, 0x02);
	CHECK_EQ(irr() & 0x10, 0);
	io(COM1 + 4, false, 0x08);
	CHECK(irr() & 0x10);
	CHECK_EQ(iir(), 0xC2);
	CHECK_EQ(iir(), 0xC1); /* reading IIR cleared THRE */
	CHECK_EQ(irr() & 0x10, 0);
	io(COM1, false, 'x'); /* a byte sent: THRE again */
	CHECK_EQ(iir(), 0xC2);

	/* Received data below the trigger level: the timeout, 4 characters
	 * (40 bits at 115200 baud, 347 us) after the last activity. */
	io(COM1 + 1, false, 0x0F);
	guest_tsc_now = 10 * MS;
	vuart_input(&vm, 'a');
	vuart_input(&vm, 'b');
	vuart_input(&vm, 'c');
	CHECK_EQ(vdev_deadline(&vm), 0); /* the shell's byte: clock starts at sync */
	vdev_sync(&vm, guest_tsc_now);
	CHECK_EQ(vdev_deadline(&vm), 10 * MS + 347222);
	CHECK_EQ(iir(), 0xC1);
	guest_tsc_now += 347222;
	CHECK_EQ(iir(), 0xCC);
	CHECK(irr() & 0x10);
	/* At the trigger level: received data. */
	vuart_input(&vm, 'd');
	CHECK_EQ(iir(), 0xC4);
	/* Overrun outranks it until LSR is read. */
	for (int i = 0; i < 64; i++)
		vuart_input(&vm, 'z');
	CHECK_EQ(iir(), 0xC6);
	CHECK_EQ(io(COM1 + 5, true, 0) & 0x03, 0x03);
	CHECK_EQ(iir(), 0xC4);
	/* THRE is pending under the received data: seen once it is read. */
	io(COM1, false, 'y');
	CHECK_EQ(iir(), 0xC4);
	io(COM1 + 2, false, 0x43); /* receiver cleared */
	CHECK_EQ(iir(), 0xC2);
	/* Modem status, lowest: a loopback change of the modem lines. */
	io(COM1 + 4, false, 0x19);
	io(COM1 + 4, false, 0x18);
	CHECK_EQ(iir(), 0xC0);
	CHECK_EQ(irr() & 0x10, 0);		      /* loopback keeps OUT2 off the line */
	CHECK_EQ(io(COM1 + 6, true, 0) & 0x0F, 0x03); /* DCTS, DDSR */
	CHECK_EQ(iir(), 0xC1);
	io(COM1 + 4, false, 0x08);
	CHECK_EQ(iir(), 0xC0); /* CTS back on */
	(void)io(COM1 + 6, true, 0);

	/* Each trigger level: n - 1 bytes wait (no timeout yet), n interrupt. */
	for (unsigned t = 0; t < 4; t++) {
		static const u8 level[4] = { 1, 4, 8, 14 };

		io(COM1 + 2, false, (u8)(t << 6 | 0x03));
		for (int i = 0; i < level[t] - 1; i++)
			vuart_input(&vm, 'q');
		CHECK_EQ(iir() & 0x0F, 0x01);
		vuart_input(&vm, 'q');
		CHECK_EQ(iir() & 0x0F, 0x04);
	}
	/* Without FIFOs: one byte is enough, and no FIFO bits in IIR. */
	io(COM1 + 2, false, 0x00);
	io(COM1 + 2, false, 0x02);
	CHECK_EQ(iir(), 0x01);
	vuart_input(&vm, 'q');
	CHECK_EQ(iir(), 0x04);
	CHECK_EQ(io(COM1, true, 0), 'q');
	CHECK_EQ(iir(), 0x01);
}

/* ---- records ------------------------------------------------------------- */
static void test_platform_records(void)
{
	const struct vdev *cmos_d = vdev_find(VDEV_CMOS), *pm_d = vdev_find(VDEV_PM);
	const struct vdev *uart_d = vdev_find(VDEV_UART), *board_d = vdev_find(VDEV_BOARD);
	u8 a[512], b[512];
	const char *why = NULL;

	fresh();
	CHECK(pm_d && cmos_d && uart_d && board_d);
	CHECK_STR(vdev_id_name(VDEV_PM), "pm");
	/* The RTC mid-work: periodic flags and the line up, time set. */
	cmos_set(0x0B, 0x42);
	cmos_set(0x40, 0x77);
	guest_tsc_now = 3 * HZ;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(irr() & 0x100);
	CHECK_EQ(vdev_save(&vm, cmos_d, a), 0);
	memcpy(b, a, sizeof(a));
	/* Garbage: a flag no register C has. */
	b[2] = 0x01;
	CHECK_EQ(vdev_load(&vm, cmos_d, b, cmos_d->record_size, 2, &why), -EINVAL);
	CHECK(strstr(why, "MC146818") != NULL);
	CHECK_EQ(vdev_load(&vm, cmos_d, a, cmos_d->record_size, 2, &why), 0);
	CHECK_EQ(vdev_save(&vm, cmos_d, b), 0);
	CHECK_EQ(memcmp(a, b, cmos_d->record_size), 0);
	CHECK_EQ(cmos(0x0C) & 0xC0, 0xC0);
	CHECK_EQ(cmos(0x40), 0x77);
	/* Version 1 (the index alone): the clock from the epoch at TSC 0. */
	memset(a, 0, sizeof(a));
	a[0] = 0x0B;
	CHECK_EQ(vdev_load(&vm, cmos_d, a, 8, 1, &why), 0);
	CHECK_EQ(io(0x71, true, 0), 0x02);
	CHECK_EQ(cmos(0x00), 0x03);
	CHECK_EQ(cmos(0x09), 0x25);
	CHECK_EQ(cmos(0x40), 0x00);

	/* PM: enable bits no chipset has are refused. */
	io_sz(0x602, 2, false, 0x0101);
	CHECK_EQ(vdev_save(&vm, pm_d, a), 0);
	CHECK_EQ(a[2], 0x01);
	CHECK_EQ(a[3], 0x01);
	a[3] = 0x80;
	CHECK_EQ(vdev_load(&vm, pm_d, a, pm_d->record_size, 1, &why), -EINVAL);
	CHECK_EQ(io_sz(0x602, 2, true, 0), 0x0101);

	/* UART: a THRE flag of 2 is garbage; version 1 has nothing pending. */
	io(COM1 + 4, false, 0x08);
	io(COM1 + 1, false, 0x02);
	CHECK_EQ(vdev_save(&vm, uart_d, a), 0);
	CHECK_EQ(a[0xD8], 1);
	a[0xD8] = 2;
	CHECK_EQ(vdev_load(&vm, uart_d, a, uart_d->record_size, 2, &why), -EINVAL);
	a[0xD8] = 1;
	CHECK_EQ(vdev_load(&vm, uart_d, a, 0xD8, 1, &why), 0);
	CHECK_EQ(iir(), 0x01); /* THRE not pending in a version 1 UART */

	/* The board: reset control bits beyond SYS_RST and FULL_RST refused;
	 * version 1 had none. */
	io(0xCF9, false, 0x02);
	CHECK_EQ(vdev_save(&vm, board_d, a), 0);
	CHECK_EQ(a[8], 0x02);
	a[8] = 0x04;
	CHECK_EQ(vdev_load(&vm, board_d, a, board_d->record_size, 2, &why), -EINVAL);
	CHECK_EQ(vdev_load(&vm, board_d, a, 8, 1, &why), 0);
	CHECK_EQ(io(0xCF9, true, 0), 0);
	CHECK_EQ(resets, 0);
}

int main(void)
{
	test_rtc_calendar();
	test_rtc_uip_flags();
	test_pm();
	test_uart_interrupts();
	test_platform_records();
	vdev_free_all(&vm);
	return test_done("platform");
}
