/*
 * Host unit test of the emulated devices through their table (vmm/vdev.c):
 * the guest's COM1 (line buffering cut at 127 characters, control characters,
 * loopback, scratch, input queue), the 8254 (counters and OUT2 computed from a
 * guest TSC the test moves by hand, latching, port 0x61, IRQ0), the 8259A pair
 * (initialization, priorities, EOI forms, rotation, AEOI, special mask, poll,
 * cascade, ELCR), the 8042, CMOS sizes, VGA, and every device's record: saved,
 * restored into a fresh VM, equal; impossible records refused, state kept.
 * printk, the heap and the guest TSC are small host stand-ins here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/printk.h"
#include "snapshot/format.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

/* ---- host stand-ins for the kernel functions the devices call ---------- */
static char out[65536];
static size_t out_len;
static u64 guest_tsc_now;
static int stops;

void printk(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_len += vsnprintf(out + out_len, sizeof(out) - out_len, fmt, ap);
	va_end(ap);
}

void vm_stop(struct vm *vm, const char *fmt, ...)
{
	stops++;
	vm->state = VM_STOPPED;
}

static int resets, power_offs;
static char reset_how[48];

void vm_request_reset(struct vm *vm, const char *how)
{
	resets++;
	snprintf(reset_how, sizeof(reset_how), "%s", how);
}

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
void vcpu_kick(struct vcpu *v) { v->kicked = true; }
static int kicks;
void vm_kick(struct vm *m) { kicks++; }
u64 vmm_wallclock(void) { return 0; } /* unknown: the epoch */

static struct vm vm;
static struct vcpu vcpu = { .vm = &vm };

static u32 io(u16 port, bool in, u32 val)
{
	vdev_io(&vcpu, port, 1, in, &val);
	return val;
}

/* The UART's registers, as the guest reaches them. */
static void vuart_write(struct vm *m, u16 reg, u8 val) { io(0x3F8 + reg, false, val); }
static u32 vuart_read(struct vm *m, u16 reg) { return io(0x3F8 + reg, true, 0); }

/* ---- COM1 ------------------------------------------------------------------- */
static void test_uart(void)
{
	out_len = 0;
	out[0] = 0;
	for (const char *p = "hello\r\n"; *p; p++)
		vuart_write(&vm, 0, (u8)*p);
	CHECK_STR(out, "[vm3] hello\n");

	/* 300 characters without a newline: pieces of 127, nothing lost. */
	out_len = 0;
	for (int i = 0; i < 300; i++)
		vuart_write(&vm, 0, 'x');
	CHECK_EQ(out_len, 2 * (6 + 127 + 1));
	vuart_flush(&vm);
	CHECK_EQ(out_len, 2 * (6 + 127 + 1) + 6 + 46 + 1);
	/* Control characters are shown as '?', tabs kept. */
	out_len = 0;
	vuart_write(&vm, 0, 0x1B);
	vuart_write(&vm, 0, '\t');
	vuart_write(&vm, 0, 'a');
	vuart_write(&vm, 0, '\n');
	CHECK_STR(out, "[vm3] ?\ta\n");

	/* LSR: transmitter always empty; DR once input waits. */
	CHECK_EQ(vuart_read(&vm, 5), 0x60);
	CHECK(vuart_input(&vm, 'k'));
	CHECK_EQ(vuart_read(&vm, 5), 0x61);
	CHECK_EQ(vuart_read(&vm, 0), 'k');
	CHECK_EQ(vuart_read(&vm, 5), 0x60);
	for (int i = 0; i < 63; i++)
		CHECK(vuart_input(&vm, (u8)i));
	CHECK(!vuart_input(&vm, 'z')); /* 64-byte ring, one slot kept free */

	/* Divisor latch, scratch, FIFO flag in IIR, loopback through MSR. */
	vuart_write(&vm, 3, 0x80);
	vuart_write(&vm, 0, 0x0C);
	vuart_write(&vm, 1, 0x00);
	CHECK_EQ(vuart_read(&vm, 0), 0x0C);
	vuart_write(&vm, 3, 0x03);
	vuart_write(&vm, 7, 0x5A);
	CHECK_EQ(vuart_read(&vm, 7), 0x5A);
	vuart_write(&vm, 2, 0xC7); /* FIFO on, receiver cleared */
	CHECK_EQ(vuart_read(&vm, 2), 0xC1);
	CHECK_EQ(vuart_read(&vm, 5), 0x62); /* the byte dropped above: overrun */
	CHECK_EQ(vuart_read(&vm, 5), 0x60); /* reading LSR cleared it */
	vuart_write(&vm, 4, 0x1F);	    /* loopback, all outputs */
	CHECK_EQ(vuart_read(&vm, 6), 0xF0);
	out_len = 0;
	vuart_write(&vm, 0, 'L');
	CHECK_EQ(out_len, 0);
	CHECK_EQ(vuart_read(&vm, 0), 'L');
	vuart_write(&vm, 4, 0x03);
	CHECK_EQ(vuart_read(&vm, 6), 0xB4); /* RI fell: TERI */
	CHECK_EQ(vuart_read(&vm, 6), 0xB0);
}

/* ---- PIT, port 0x61 --------------------------------------------------------- */
#define HZ 1193182000ULL /* a guest TSC of exactly 1000 ticks per PIT clock */

static void test_pit(void)
{
	u32 lo, hi;

	vm.guest_tsc_hz = HZ;
	guest_tsc_now = 5000000;
	/* Channel 0, mode 2, count 1000. */
	io(0x43, false, 0x34);
	io(0x40, false, 1000 & 0xFF);
	io(0x40, false, 1000 >> 8);
	guest_tsc_now += 250 * 1000;
	lo = io(0x40, true, 0);
	hi = io(0x40, true, 0);
	CHECK_EQ(lo | hi << 8, 750);
	/* Latched: the count stays while the TSC moves on. */
	io(0x43, false, 0x00);
	guest_tsc_now += 100 * 1000;
	lo = io(0x40, true, 0);
	hi = io(0x40, true, 0);
	CHECK_EQ(lo | hi << 8, 650 + 100);
	lo = io(0x40, true, 0);
	hi = io(0x40, true, 0);
	CHECK_EQ(lo | hi << 8, 650);
	/* Mode 2 reloads: 1000 + 400 clocks later it reads 600 again. */
	guest_tsc_now += 1000 * 1000;
	lo = io(0x40, true, 0);
	hi = io(0x40, true, 0);
	CHECK_EQ(lo | hi << 8, 650);

	/* Channel 2 in mode 0 the way BIOSes and time_init() calibrate: OUT2 rises
	 * on port 0x61 bit 5 once the count has run out. */
	io(0x61, false, 0x01);
	io(0x43, false, 0xB0);
	io(0x42, false, 0x00);
	io(0x42, false, 0x10); /* 4096 clocks */
	CHECK_EQ(io(0x61, true, 0) & 0x20, 0);
	guest_tsc_now += 4095ULL * 1000;
	CHECK_EQ(io(0x61, true, 0) & 0x20, 0);
	guest_tsc_now += 2 * 1000;
	CHECK_EQ(io(0x61, true, 0) & 0x20, 0x20);
	CHECK_EQ(io(0x61, true, 0) & 0x0F, 0x01);
	/* The gate off: OUT2 reads low. */
	io(0x61, false, 0x00);
	CHECK_EQ(io(0x61, true, 0) & 0x20, 0);
	/* The refresh bit toggles with time. */
	lo = io(0x61, true, 0) & 0x10;
	guest_tsc_now += 15085ULL * HZ / 1000000000ULL;
	CHECK(lo != (io(0x61, true, 0) & 0x10));
	/* Lobyte-only access mode. */
	io(0x43, false, 0x90);
	io(0x42, false, 200);
	guest_tsc_now += 50 * 1000;
	CHECK_EQ(io(0x42, true, 0), 150);
}

static void test_8042_cmos(void)
{
	vdev_reset_all(&vm);
	vm.mem_size = MiB(32);
	CHECK_EQ(io(0x64, true, 0) & 0x01, 0); /* no key */
	io(0x64, false, 0xAA);
	CHECK_EQ(io(0x64, true, 0) & 0x01, 1);
	CHECK_EQ(io(0x60, true, 0), 0x55);
	io(0x60, false, 0xFF); /* keyboard reset: ACK, then self test passed */
	CHECK_EQ(io(0x60, true, 0), 0xFA);
	CHECK_EQ(io(0x60, true, 0), 0xAA);
	CHECK_EQ(io(0x64, true, 0) & 0x01, 0);
	io(0x64, false, 0x20);
	CHECK_EQ(io(0x60, true, 0), 0x45);

	io(0x70, false, 0x15);
	CHECK_EQ(io(0x71, true, 0), 640 & 0xFF);
	io(0x70, false, 0x17);
	CHECK_EQ(io(0x71, true, 0), 31744 & 0xFF);
	io(0x70, false, 0x18);
	CHECK_EQ(io(0x71, true, 0), 31744 >> 8);
	io(0x70, false, 0x35);
	CHECK_EQ(io(0x71, true, 0), 1); /* 16 MiB above 16 MiB: 256 units of 64 KiB */
	io(0x80, false, 0x42);
	CHECK_EQ(io(0x80, true, 0), 0x42);
	CHECK_EQ(io(0xCFC, true, 0), 0xFFFFFFFF);
	io(0x3D4, false, 0x0E);
	io(0x3D5, false, 0x07);
	CHECK_EQ(io(0x3D5, true, 0), 0x07);
	/* The port claims nothing it does not emulate. */
	{
		u32 val = 0x1234;

		CHECK(!vdev_io(&vcpu, 0x300, 1, true, &val));
		CHECK_EQ(val, 0x1234);
	}

	/* The reset lines: the 8042 pulse, port 0x92 bit 0 rising, 0xCF9. */
	CHECK_EQ(resets, 0);
	io(0x64, false, 0xFE); /* reset pulse */
	CHECK_EQ(resets, 1);
	CHECK_STR(reset_how, "the 8042");
	io(0x92, false, 0x01);
	CHECK_EQ(resets, 2);
	CHECK_EQ(io(0x92, true, 0), 0x03);
	io(0x92, false, 0x01); /* no edge */
	CHECK_EQ(resets, 2);
	io(0xCF9, false, 0x02); /* SYS_RST alone: no reset yet (Linux's order) */
	CHECK_EQ(resets, 2);
	CHECK_EQ(io(0xCF9, true, 0), 0x02);
	io(0xCF9, false, 0x06);
	CHECK_EQ(resets, 3);
	CHECK_STR(reset_how, "port 0xcf9");
	io(0xCF9, false, 0x0E);
	CHECK_EQ(resets, 4);
	CHECK_EQ(stops, 0);
}

/* ---- 8259A pair ------------------------------------------------------------ */
/* Linux's init_8259A(): ICW1 edge + ICW4, vectors 0x30/0x38, cascade on IR2,
 * 8086 mode; then the masks. */
static void pic_init(u8 icw4)
{
	io(0x20, false, 0x11);
	io(0x21, false, 0x30);
	io(0x21, false, 0x04);
	io(0x21, false, icw4);
	io(0xA0, false, 0x11);
	io(0xA1, false, 0x38);
	io(0xA1, false, 0x02);
	io(0xA1, false, icw4);
	io(0x21, false, 0x00);
	io(0xA1, false, 0x00);
}

static u8 irr(u16 base)
{
	io(base, false, 0x0A); /* OCW3: read IRR */
	return (u8)io(base, true, 0);
}

static u8 isr(u16 base)
{
	u8 v;

	io(base, false, 0x0B); /* OCW3: read ISR */
	v = (u8)io(base, true, 0);
	io(base, false, 0x0A);
	return v;
}

static void test_pic(void)
{
	vdev_reset_all(&vm);
	/* Power-on: everything masked, nothing asserted. */
	CHECK_EQ(io(0x21, true, 0), 0xFF);
	vm_set_irq(&vm, 1, true);
	CHECK(!vpic_intr(&vm));
	pic_init(0x01);
	CHECK_EQ(irr(0x20), 0); /* ICW1 reset the edge sense and the IRR */
	vm_set_irq(&vm, 1, false);

	/* Edge: a rising edge latches; the level staying high adds nothing. */
	vm_set_irq(&vm, 4, true);
	CHECK_EQ(irr(0x20), 0x10);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x34);
	CHECK_EQ(isr(0x20), 0x10);
	CHECK_EQ(irr(0x20), 0);
	CHECK(!vpic_intr(&vm)); /* IR4 in service blocks itself and below */
	/* A higher level nests over the one in service, a lower waits. */
	vm_set_irq(&vm, 6, true);
	vm_set_irq(&vm, 3, true);
	CHECK_EQ(vpic_ack(&vm), 0x33);
	CHECK_EQ(isr(0x20), 0x18);
	CHECK(!vpic_intr(&vm));
	io(0x20, false, 0x20); /* non-specific EOI: the highest in service, IR3 */
	CHECK_EQ(isr(0x20), 0x10);
	CHECK(!vpic_intr(&vm));
	io(0x20, false, 0x64); /* specific EOI of IR4 */
	CHECK_EQ(isr(0x20), 0);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x36);
	io(0x20, false, 0x20);
	vm_set_irq(&vm, 3, false);
	vm_set_irq(&vm, 4, false);
	vm_set_irq(&vm, 6, false);

	/* Masking holds a request back; unmasking lets it through. */
	io(0x21, false, 0x01);
	vm_set_irq(&vm, 0, true);
	CHECK(!vpic_intr(&vm));
	io(0x21, false, 0x00);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x30);
	io(0x20, false, 0x20);
	vm_set_irq(&vm, 0, false);

	/* The cascade: IRQ12 arrives through IR2; both chips hold it in service
	 * until both are sent their EOI. */
	vm_set_irq(&vm, 12, true);
	CHECK_EQ(irr(0xA0), 0x10);
	CHECK_EQ(irr(0x20), 0x04);
	CHECK_EQ(vpic_ack(&vm), 0x3C);
	CHECK_EQ(isr(0xA0), 0x10);
	CHECK_EQ(isr(0x20), 0x04);
	vm_set_irq(&vm, 5, true); /* IR5 is below IR2 on the master: waits */
	CHECK(!vpic_intr(&vm));
	io(0xA0, false, 0x20);
	io(0x20, false, 0x20);
	CHECK_EQ(vpic_ack(&vm), 0x35);
	io(0x20, false, 0x20);
	vm_set_irq(&vm, 5, false);
	vm_set_irq(&vm, 12, false);

	/* A request that went away before the acknowledge: the default IR7
	 * vector, nothing in service ("Interrupt Sequence"). A level line that
	 * falls removes its request. */
	io(0x4D0, false, 0xFF);
	CHECK_EQ(io(0x4D0, true, 0), 0xF8); /* IRQ0-2 cannot be level */
	vm_set_irq(&vm, 3, true);
	vm_set_irq(&vm, 3, false);
	CHECK(!vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x37);
	CHECK_EQ(isr(0x20), 0);
	/* Level: the request stays while the line is high, even after the ack. */
	vm_set_irq(&vm, 3, true);
	CHECK_EQ(vpic_ack(&vm), 0x33);
	CHECK_EQ(irr(0x20), 0x08);
	io(0x20, false, 0x20);
	CHECK(vpic_intr(&vm));
	vm_set_irq(&vm, 3, false);
	CHECK(!vpic_intr(&vm));
	io(0x4D0, false, 0x00);

	/* Rotation: set priority makes IR4 the lowest, so IR5 beats IR1. */
	io(0x20, false, 0xC4);
	vm_set_irq(&vm, 1, true);
	vm_set_irq(&vm, 5, true);
	CHECK_EQ(vpic_ack(&vm), 0x35);
	io(0x20, false, 0xA0); /* rotate on non-specific EOI: IR5 lowest now */
	CHECK_EQ(vpic_ack(&vm), 0x31);
	io(0x20, false, 0xE1); /* rotate on specific EOI of IR1 */
	CHECK_EQ(isr(0x20), 0);
	io(0x20, false, 0xC7); /* back to IR7 lowest */
	vm_set_irq(&vm, 1, false);
	vm_set_irq(&vm, 5, false);

	/* Special mask mode: a masked level in service blocks nobody. */
	vm_set_irq(&vm, 3, true);
	CHECK_EQ(vpic_ack(&vm), 0x33);
	io(0x21, false, 0x08);
	io(0x20, false, 0x68); /* OCW3: set special mask */
	vm_set_irq(&vm, 6, true);
	CHECK(vpic_intr(&vm));
	io(0x20, false, 0x48); /* reset special mask: IR3 in service blocks IR6 */
	CHECK(!vpic_intr(&vm));
	io(0x20, false, 0x63);
	io(0x21, false, 0x00);
	CHECK_EQ(vpic_ack(&vm), 0x36);
	io(0x20, false, 0x20);
	vm_set_irq(&vm, 3, false);
	vm_set_irq(&vm, 6, false);

	/* Poll mode: the read acknowledges and names the level. */
	vm_set_irq(&vm, 6, true);
	io(0x20, false, 0x0C);
	CHECK_EQ(io(0x20, true, 0), 0x86);
	CHECK_EQ(isr(0x20), 0x40);
	io(0x20, false, 0x0C);
	CHECK_EQ(io(0x20, true, 0), 0x00); /* nothing else requesting */
	io(0x20, false, 0x20);
	vm_set_irq(&vm, 6, false);

	/* Automatic EOI: nothing stays in service. */
	pic_init(0x03);
	vm_set_irq(&vm, 7, true);
	CHECK_EQ(vpic_ack(&vm), 0x37);
	CHECK_EQ(isr(0x20), 0);
	vm_set_irq(&vm, 7, false);
	/* IRQ2 is the cascade: it cannot be raised from outside. */
	vm_set_irq(&vm, 2, true);
	CHECK(!vpic_intr(&vm));
}

/* IRQ0 follows PIT channel 0: mode 2 at a count of 1000 raises one request
 * per period, coalesced while the PIC has not taken it. */
static void test_pit_irq0(void)
{
	vdev_reset_all(&vm);
	vm.guest_tsc_hz = HZ;
	guest_tsc_now = 1000000;
	pic_init(0x01);
	io(0x43, false, 0x34);
	/* OUT0 rose from its power-on low with the control word: one request. */
	CHECK(vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x30);
	io(0x20, false, 0x20);
	io(0x40, false, 1000 & 0xFF);
	io(0x40, false, 1000 >> 8);
	vdev_sync(&vm, guest_tsc_now);
	CHECK(!vpic_intr(&vm));
	guest_tsc_now += 999 * 1000;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(!vpic_intr(&vm));
	guest_tsc_now += 1000;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(vpic_ack(&vm), 0x30);
	io(0x20, false, 0x20);
	CHECK(!vpic_intr(&vm));
	/* Three periods pass unserviced: one request (the PIC latches edges). */
	guest_tsc_now += 3 * 1000 * 1000;
	vdev_sync(&vm, guest_tsc_now);
	CHECK_EQ(vpic_ack(&vm), 0x30);
	io(0x20, false, 0x20);
	CHECK(!vpic_intr(&vm));
	/* Mode 0 (one shot): one edge at terminal count, none after. */
	io(0x43, false, 0x30);
	io(0x40, false, 100);
	io(0x40, false, 0);
	guest_tsc_now += 101 * 1000;
	vdev_sync(&vm, guest_tsc_now);
	CHECK_EQ(vpic_ack(&vm), 0x30);
	io(0x20, false, 0x20);
	guest_tsc_now += 1000 * 1000;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(!vpic_intr(&vm));
}

/* The PIT's deadline is the guest TSC of OUT0's next rising edge, rounded up
 * so that a sync there sees it (modes 2 and 0); the 8259A kicks the vCPUs
 * when its INTR rises, not while it stays up. */
static void test_pit_deadline(void)
{
	const struct vdev *pit = vdev_find(VDEV_PIT);
	u64 start, dl;

	vdev_reset_all(&vm);
	vm.guest_tsc_hz = HZ;
	guest_tsc_now = 5000000;
	pic_init(0x01);
	CHECK_EQ(pit->deadline(&vm, vm.dev[VDEV_PIT]), ~0ULL); /* no count written */
	io(0x43, false, 0x34);
	vpic_ack(&vm);
	io(0x20, false, 0x20);
	io(0x40, false, 1000 & 0xFF);
	io(0x40, false, 1000 >> 8);
	start = guest_tsc_now;
	for (int period = 1; period <= 3; period++) {
		dl = pit->deadline(&vm, vm.dev[VDEV_PIT]);
		CHECK_EQ(dl, start + (u64)period * 1000 * 1000 + 1);
		guest_tsc_now = dl - 2; /* the port accesses sync too */
		vdev_sync(&vm, guest_tsc_now);
		CHECK(!vpic_intr(&vm));
		kicks = 0;
		guest_tsc_now = dl;
		vdev_sync(&vm, dl);
		CHECK(vpic_intr(&vm));
		CHECK_EQ(kicks, 1);
		CHECK(pit->deadline(&vm, vm.dev[VDEV_PIT]) > dl);
		CHECK_EQ(vpic_ack(&vm), 0x30);
		io(0x20, false, 0x20);
	}
	/* Masked IR0: the edge waits in the IRR, nobody is kicked; the unmask
	 * raises INTR and kicks. */
	io(0x21, false, 0x01);
	kicks = 0;
	guest_tsc_now = start + 4 * 1000 * 1000 + 1;
	vdev_sync(&vm, guest_tsc_now);
	CHECK(!vpic_intr(&vm));
	CHECK_EQ(kicks, 0);
	io(0x21, false, 0x00);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(kicks, 1);
	vpic_ack(&vm);
	io(0x20, false, 0x20);
	/* Mode 0: one deadline at terminal count, none after its edge. */
	io(0x43, false, 0x30);
	io(0x40, false, 100);
	io(0x40, false, 0);
	start = guest_tsc_now;
	dl = pit->deadline(&vm, vm.dev[VDEV_PIT]);
	CHECK_EQ(dl, start + 100 * 1000 + 1);
	guest_tsc_now = dl;
	vdev_sync(&vm, dl);
	CHECK(vpic_intr(&vm));
	CHECK_EQ(pit->deadline(&vm, vm.dev[VDEV_PIT]), ~0ULL);
	vpic_ack(&vm);
	io(0x20, false, 0x20);
}

/* Every device's record: saved from a VM in use, loaded into a fresh VM, and
 * saved again: the bytes are equal, so nothing was dropped on the way. */
static void test_records(void)
{
	static struct vm other;
	static u8 a[4096], b[4096];
	const char *why = NULL;

	vdev_reset_all(&vm);
	pic_init(0x01);
	io(0x21, false, 0xA8);
	vm_set_irq(&vm, 4, true);
	vpic_ack(&vm);
	vm_set_irq(&vm, 12, true);
	io(0x43, false, 0x34);
	io(0x40, false, 0x9C);
	io(0x40, false, 0x2E);
	vuart_write(&vm, 7, 0x5A);
	vuart_input(&vm, 'q');
	io(0x64, false, 0xAA);
	io(0x70, false, 0x0B);
	io(0x80, false, 0x99);
	io(0x3D4, false, 0x0F);
	io(0x3D5, false, 0x50);
	other.id = 4;
	CHECK_EQ(vdev_alloc_all(&other), 0);
	for (int i = 0; i < vdev_count(); i++) {
		const struct vdev *d = vdev_at(i);

		CHECK(d->record_size <= sizeof(a) && d->record_size % 8 == 0);
		CHECK(vdev_id_name(d->id) != NULL);
		CHECK(vdev_find(d->id) == d);
		CHECK_EQ(vdev_save(&vm, d, a), 0);
		CHECK_EQ(vdev_load(&other, d, a, d->record_size, d->version, &why), 0);
		CHECK_EQ(vdev_save(&other, d, b), 0);
		CHECK(memcmp(a, b, d->record_size) == 0);
		CHECK_EQ(memcmp(vm.dev[d->id], other.dev[d->id], d->state_size), 0);
		/* A version from the future and an overlong record are refused. */
		CHECK(vdev_load(&other, d, a, d->record_size, d->version + 1, &why) != 0);
		CHECK(vdev_load(&other, d, a, d->record_size + 8, d->version, &why) != 0);
	}
	/* Impossible values are refused and the device keeps its state. */
	{
		const struct vdev *pic = vdev_find(VDEV_PIC), *pit = vdev_find(VDEV_PIT);
		const struct vdev *uart = vdev_find(VDEV_UART);

		vdev_save(&other, pic, a);
		a[9] = 8; /* master's lowest-priority IR */
		CHECK_EQ(vdev_load(&other, pic, a, 32, 2, &why), -EINVAL);
		CHECK(strstr(why, "8259A") != NULL);
		CHECK_EQ(memcmp(vm.dev[VDEV_PIC], other.dev[VDEV_PIC], pic->state_size), 0);
		vdev_save(&other, pit, a);
		a[1] = 0; /* channel 0 access mode */
		CHECK_EQ(vdev_load(&other, pit, a, pit->record_size, 2, &why), -EINVAL);
		vdev_save(&other, uart, a);
		a[0x0C] = 64; /* receive ring head past the ring */
		CHECK_EQ(vdev_load(&other, uart, a, uart->record_size, 1, &why), -EINVAL);
		CHECK(vuart_input(&other, 'z'));
		/* Version 1 of the PIC record: the masks alone, the rest as it was. */
		memset(a, 0, sizeof(a));
		a[0] = 0x12;
		a[1] = 0x34;
		CHECK_EQ(vdev_load(&other, pic, a, 2, 1, &why), 0);
		{
			struct vcpu ov = { .vm = &other };
			u32 m0 = 0, m1 = 0;

			CHECK(vdev_io(&ov, 0x21, 1, true, &m0) && vdev_io(&ov, 0xA1, 1, true, &m1));
			CHECK_EQ(m0, 0x12);
			CHECK_EQ(m1, 0x34);
			m0 = 0;
			io(0x20, false, 0x0B); /* the ISR, untouched by the v1 record */
			vdev_io(&ov, 0x20, 1, false, &(u32){ 0x0B });
			vdev_io(&ov, 0x20, 1, true, &m0);
			CHECK_EQ(m0, 0x10);
		}
	}
	vdev_free_all(&other);
}

static u32 in(struct vcpu *v, u16 port)
{
	u32 val = 0xFFFFFFFF;

	vdev_io(v, port, 1, true, &val);
	return val;
}

/* ---- fw_cfg ----------------------------------------------------------------- */
static void fwcfg_select(u16 key)
{
	u32 val = key;

	CHECK(vdev_io(&vcpu, 0x510, 2, false, &val));
}

static u64 fwcfg_read(unsigned n) /* n bytes, little-endian */
{
	u64 v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (u64)io(0x511, true, 0) << (8 * i);
	return v;
}

static u64 fwcfg_read_be(unsigned n)
{
	u64 v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | io(0x511, true, 0);
	return v;
}

/* QEMU's fw_cfg as kvm-unit-tests and SeaBIOS read it: the signature, ID,
 * RAM size, CPU counts, the big-endian directory and its two files; a read
 * past an item gives 0; what the device does not answer says so. */
static void test_fwcfg(void)
{
	static struct vm other;
	struct vcpu ov = { .vm = &other };
	const struct vdev *d = vdev_find(VDEV_FWCFG);
	char name[57];
	u8 rec[8];
	u32 val = 0, sizes[2], sel[2];
	const char *why = NULL;

	vm.mem_size = MiB(32);
	vm.nvcpus = 1;
	fwcfg_select(0x0000);
	CHECK_EQ(fwcfg_read(4), 0x554D4551); /* "QEMU" */
	CHECK_EQ(fwcfg_read(1), 0);	     /* past the end */
	fwcfg_select(0x0000);
	CHECK_EQ(io(0x510, true, 0), 'Q'); /* the selector port reads data too */
	fwcfg_select(0x0001);
	CHECK_EQ(fwcfg_read(4), 1); /* traditional interface, no DMA */
	fwcfg_select(0x0003);
	CHECK_EQ(fwcfg_read(2), MiB(32) & 0xFFFF);
	io(0x511, false, 0x00); /* a data write is ignored ... */
	io(0x510, false, 0x05); /* ... a byte write to the selector too */
	CHECK_EQ(fwcfg_read(6), MiB(32) >> 16);
	fwcfg_select(0x0005);
	CHECK_EQ(fwcfg_read(2), 1);
	vm.nvcpus = 4;
	fwcfg_select(0x000F);
	CHECK_EQ(fwcfg_read(2), 4);
	vm.nvcpus = 1;
	fwcfg_select(0x1234);
	CHECK_EQ(fwcfg_read(4), 0);
	CHECK(!vdev_io(&vcpu, 0x511, 4, true, &val));
	CHECK(!vdev_io(&vcpu, 0x511, 2, true, &val));

	fwcfg_select(0x0019);
	CHECK_EQ(fwcfg_read_be(4), 2);
	for (int i = 0; i < 2; i++) {
		sizes[i] = (u32)fwcfg_read_be(4);
		sel[i] = (u32)fwcfg_read_be(2);
		CHECK_EQ(fwcfg_read_be(2), 0);
		for (int k = 0; k < 56; k++)
			name[k] = (char)fwcfg_read(1);
		name[56] = 0;
		CHECK_STR(name, i ? "etc/e820" : "etc/boot-cpus");
	}
	CHECK_EQ(sizes[0], 2);
	CHECK_EQ(sel[0], 0x20);
	CHECK_EQ(sizes[1], 5 * 20); /* RAM, [EBDA, 1 MiB), RAM, IOAPIC, LAPIC */
	CHECK_EQ(sel[1], 0x21);
	fwcfg_select((u16)sel[0]);
	CHECK_EQ(fwcfg_read(2), 1);
	fwcfg_select((u16)sel[1]);
	CHECK_EQ(fwcfg_read(8), 0);
	CHECK_EQ(fwcfg_read(8), 0x9FC00);
	CHECK_EQ(fwcfg_read(4), 1);
	CHECK_EQ(fwcfg_read(8), 0x9FC00);
	CHECK_EQ(fwcfg_read(8), 0x100000 - 0x9FC00);
	CHECK_EQ(fwcfg_read(4), 2);

	/* Saved three bytes into the RAM size, restored elsewhere: the read
	 * goes on at the fourth. */
	fwcfg_select(0x0003);
	fwcfg_read(3);
	other.mem_size = MiB(32);
	other.nvcpus = 1;
	CHECK_EQ(vdev_alloc_all(&other), 0);
	CHECK_EQ(vdev_save(&vm, d, rec), 0);
	CHECK_EQ(vdev_load(&other, d, rec, sizeof(rec), 1, &why), 0);
	CHECK_EQ(in(&ov, 0x511), (MiB(32) >> 24) & 0xFF);
	CHECK_EQ(in(&ov, 0x511), 0);
	/* An offset no item has is refused and the state kept. */
	rec[4] = 0xFF;
	rec[5] = 0xFF;
	CHECK_EQ(vdev_load(&other, d, rec, sizeof(rec), 1, &why), -EINVAL);
	CHECK(strstr(why, "fw_cfg") != NULL);
	CHECK_EQ(in(&ov, 0x511), 0);
	vdev_free_all(&other);
}

/* A version 1 image's PLATFORM and DEVICES payloads, cut into records by the
 * snapshot reader (snapshot/format.c), restore every device as it was. */
static void test_version1_records(void)
{
	static struct vm old;
	struct snap_devrec recs[SNAP_MAX_DEVICES];
	struct vcpu ov = { .vm = &old };
	u8 dev[SNAP_DEVICES_SIZE_V1] = { 0 }, pf[SNAP_PLATFORM_SIZE] = { 0 };
	const char *why = NULL;
	u32 n = 0;

	/* As Amber 1 wrote them (docs/snapshot-format.md, version 1). */
	dev[0xB0 + 7 - 4] = 0x5A; /* UART scratch, record offset 3 */
	pf[0x00] = 2;		  /* channel 0: mode 2, lo/hi, armed, count 1000 */
	pf[0x01] = 3;
	pf[0x05] = 1;
	pf[0x08] = 1000 & 0xFF;
	pf[0x09] = 1000 >> 8;
	pf[0x18 + 1] = 3; /* channels 1, 2: access 3, as after reset */
	pf[0x30 + 1] = 3;
	pf[0x48] = 0x01; /* port 0x61: gate 2 */
	pf[0x49] = 0xFE; /* master mask */
	pf[0x4A] = 0xF7; /* slave mask */
	pf[0x4C] = 0x47; /* 8042 command byte */
	pf[0x4D] = 1;	 /* one byte queued ... */
	pf[0x50] = 0x55; /* ... the self-test answer */
	pf[0x4E] = 0x42; /* POST code */
	pf[0x4F] = 0x0B; /* CMOS index */
	pf[0x60] = 0x0E; /* VGA CRT index */
	pf[0x61] = 0x63;
	pf[0x68 + 0x0E] = 0x07;
	snap_v1_devrecs(SNAP_SEC_DEVICES, dev, sizeof(dev), recs, &n);
	snap_v1_devrecs(SNAP_SEC_PLATFORM, pf, sizeof(pf), recs, &n);
	CHECK_EQ(vdev_alloc_all(&old), 0);
	old.guest_tsc_hz = HZ;
	for (u32 i = 0; i < n; i++) {
		const struct vdev *d = vdev_find(recs[i].id);

		CHECK(d != NULL);
		if (!d)
			continue;
		CHECK_EQ(vdev_load(&old, d, recs[i].data, recs[i].len, recs[i].version, &why), 0);
	}
	CHECK_EQ(in(&ov, 0x3FF), 0x5A);
	CHECK_EQ(in(&ov, 0x21), 0xFE);
	CHECK_EQ(in(&ov, 0xA1), 0xF7);
	guest_tsc_now = 250 * 1000; /* channel 0 started at TSC 0 */
	CHECK_EQ(in(&ov, 0x40), 750 & 0xFF);
	CHECK_EQ(in(&ov, 0x64) & 1, 1);
	CHECK_EQ(in(&ov, 0x60), 0x55);
	CHECK_EQ(in(&ov, 0x80), 0x42);
	CHECK_EQ(in(&ov, 0x3D5), 0x07);
	CHECK_EQ(in(&ov, 0x3CC), 0x63);
	vdev_free_all(&old);
}

int main(void)
{
	vm.id = 3;
	CHECK_EQ(vdev_alloc_all(&vm), 0);
	test_uart();
	test_pit();
	test_8042_cmos();
	vm.state = VM_RUNNING;
	test_pic();
	test_pit_irq0();
	test_pit_deadline();
	test_records();
	test_version1_records();
	test_fwcfg();
	vdev_free_all(&vm);
	return test_done("vdev");
}
