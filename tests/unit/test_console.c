/* Host unit test of COM1's transmit ring (kernel/console.c) against a model
 * 16550A: a transmit FIFO of 16 bytes that takes bytes only when THRE says
 * it is empty, and a wire that the test lets drain. Checks that a write no
 * longer waits for the wire, that every byte arrives once and in order
 * (through a full ring too), that a flush empties the ring, and that the
 * ring's wake time follows what is pending. */
#include "tests/unit/check.h"
#include "kernel/console.h"
#include "kernel/time.h"

#define FIFO 16

static char wire[65536];
static size_t wire_len;
static char fifo[FIFO];
static size_t fifo_len;
static bool present = true;
static unsigned burst = FIFO;
static unsigned waits; /* uart_putc calls: writes that waited for the UART */
static u64 now_us = 1000;

u64 ticks(void) { return now_us; }

/* The transmitter sends what its FIFO holds. */
static void drain_wire(void)
{
	memcpy(wire + wire_len, fifo, fifo_len);
	wire_len += fifo_len;
	fifo_len = 0;
}

void uart_init(u16 base) { (void)base; }
bool uart_present(u16 base) { return (void)base, present; }
unsigned uart_tx_burst(u16 base) { return (void)base, burst; }
bool uart_tx_ready(u16 base) { return (void)base, present && fifo_len == 0; }
unsigned uart_tx_room(u16 base) { return uart_tx_ready(base) ? burst : 0; }

void uart_tx(u16 base, char c)
{
	(void)base;
	CHECK(fifo_len < burst); /* never more than the FIFO takes */
	if (fifo_len < FIFO)
		fifo[fifo_len++] = c;
}

/* Waits for THRE: the wire takes the FIFO meanwhile. */
void uart_putc(u16 base, char c)
{
	waits++;
	if (!present)
		return;
	drain_wire();
	uart_tx(base, c);
}

int uart_getc(u16 base) { return (void)base, -1; }
void vga_init(u64 text_phys) { (void)text_phys; }
void vga_putc(char c) { (void)c; }
bool fbcon_init(u64 phys, u32 pitch, u32 width, u32 height, u8 bpp)
{
	(void)phys, (void)pitch, (void)width, (void)height, (void)bpp;
	return false;
}
void fbcon_putc(char c) { (void)c; }

static void reset_wire(void)
{
	wire_len = fifo_len = 0;
	waits = 0;
}

/* The wire carried exactly want[0..len) (what the FIFO holds included). */
static bool wire_has(const char *want, size_t len)
{
	drain_wire();
	return wire_len == len && memcmp(wire, want, len) == 0;
}

static bool wire_is(const char *want) { return wire_has(want, strlen(want)); }

static char captured[16];
static size_t captured_len;

static void capture(const char *s, size_t n)
{
	for (size_t i = 0; i < n && captured_len < sizeof(captured); i++)
		captured[captured_len++] = s[i];
}

int main(void)
{
	static char big[40000], want[80000];
	size_t n = 0;

	console_init();

	/* Before the shell: every byte waits for the UART, "\n" as "\r\n". */
	console_write("ok\n", 3);
	CHECK_EQ(waits, 4);
	CHECK(!console_tx_pending());
	CHECK(wire_is("ok\r\n"));
	CHECK_EQ(console_tx_due(), ~0ULL);

	/* With the ring: a write hands the idle UART one FIFO's worth and
	 * returns; the rest waits, and the ring asks to be woken for it. */
	reset_wire();
	console_tx_async(true);
	console_write("0123456789abcdefghijklmnopqrstuvwxyz", 36);
	CHECK_EQ(waits, 0);
	CHECK_EQ(fifo_len, 16);
	CHECK(console_tx_pending());
	CHECK_EQ(console_tx_due(), now_us + 16 * 87);
	console_tx_poll(); /* the FIFO is not empty yet: nothing more */
	CHECK_EQ(fifo_len, 16);
	CHECK_EQ(wire_len, 0);
	drain_wire();
	console_tx_poll();
	drain_wire();
	console_tx_poll();
	CHECK(!console_tx_pending());
	CHECK_EQ(console_tx_due(), ~0ULL);
	CHECK(wire_is("0123456789abcdefghijklmnopqrstuvwxyz"));

	/* More than the ring holds, the UART never draining by itself: the full
	 * ring waits for it byte by byte; nothing is lost or reordered. */
	reset_wire();
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	console_write(big, sizeof(big));
	CHECK(waits > 0);
	CHECK(console_tx_pending());
	console_flush();
	CHECK(!console_tx_pending());
	CHECK(wire_has(big, sizeof(big)));

	/* Lines keep their "\r\n" and their order across writes. */
	reset_wire();
	for (int i = 0; i < 1000; i++) {
		char line[32];
		int len = snprintf(line, sizeof(line), "line %d\n", i);

		console_write(line, (size_t)len);
		n += (size_t)snprintf(want + n, sizeof(want) - n, "line %d\r\n", i);
		if (i % 7 == 0) { /* the wire drains now and then */
			drain_wire();
			console_tx_poll();
		}
	}
	console_flush();
	CHECK(wire_is(want));

	/* A capture that takes the output alone (the control channel's
	 * answer): the wire gets nothing; ended, the wire gets it again. */
	reset_wire();
	console_set_capture(capture, true);
	console_write("cap", 3);
	console_set_capture(NULL, false);
	console_write("x", 1);
	console_flush();
	CHECK(captured_len == 3 && memcmp(captured, "cap", 3) == 0);
	CHECK(wire_is("x"));

	/* Without FIFOs one byte goes per THRE. */
	reset_wire();
	burst = 1;
	console_write("abc", 3);
	CHECK_EQ(fifo_len, 1);
	CHECK_EQ(console_tx_due(), now_us + 87);
	console_flush();
	CHECK(wire_is("abc"));
	burst = FIFO;

	/* No UART: the ring does not fill up and nothing waits for ever. */
	reset_wire();
	present = false;
	console_write(big, sizeof(big));
	console_flush();
	CHECK(!console_tx_pending());
	CHECK_EQ(wire_len, 0);
	present = true;

	/* Switched off again (before a reset): what waits goes out first. */
	reset_wire();
	console_write("bye", 3);
	console_tx_async(false);
	CHECK(!console_tx_pending());
	CHECK(wire_is("bye"));
	return test_done("console");
}
