/*
 * Host unit test of the emulated devices: the guest's COM1 (line buffering cut
 * at 127 characters, control characters, loopback, scratch, input queue) and
 * the legacy platform (8254 counters and OUT2 computed from a guest TSC the
 * test moves by hand, latching, port 0x61, the 8042 answers and reset, CMOS
 * memory sizes, VGA retrace). printk and the backend are small host stand-ins here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/printk.h"
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

static int stub_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	if (f != VCPU_FIELD_TSC)
		return -EINVAL;
	*val = guest_tsc_now;
	return 0;
}

static const struct vcpu_ops stub_ops = { .name = "stub", .get_field = stub_get_field };
const struct vcpu_ops *vcpu_ops = &stub_ops;

static struct vm vm;
static struct vcpu vcpu = { .vm = &vm };

static u32 io(u16 port, bool in, u32 val)
{
	legacy_io(&vcpu, port, 1, in, &val);
	return val;
}

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
	CHECK_EQ(vuart_read(&vm, 5), 0x60);
	vuart_write(&vm, 4, 0x1F); /* loopback, all outputs */
	CHECK_EQ(vuart_read(&vm, 6), 0xF0);
	out_len = 0;
	vuart_write(&vm, 0, 'L');
	CHECK_EQ(out_len, 0);
	CHECK_EQ(vuart_read(&vm, 0), 'L');
	vuart_write(&vm, 4, 0x03);
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
	legacy_reset(&vm);
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
	io(0x21, false, 0xFB);
	CHECK_EQ(io(0x21, true, 0), 0xFB);
	io(0x80, false, 0x42);
	CHECK_EQ(io(0x80, true, 0), 0x42);
	CHECK_EQ(io(0xCFC, true, 0), 0xFFFFFFFF);
	io(0x3D4, false, 0x0E);
	io(0x3D5, false, 0x07);
	CHECK_EQ(io(0x3D5, true, 0), 0x07);
	/* The port claims nothing it does not emulate. */
	{
		u32 val = 0x1234;

		CHECK(!legacy_io(&vcpu, 0x300, 1, true, &val));
		CHECK_EQ(val, 0x1234);
	}

	CHECK_EQ(stops, 0);
	io(0x64, false, 0xFE); /* reset pulse */
	CHECK_EQ(stops, 1);
	CHECK_EQ(vm.state, VM_STOPPED);
}

int main(void)
{
	vm.id = 3;
	test_uart();
	test_pit();
	test_8042_cmos();
	return test_done("vdev");
}
