/*
 * Console multiplexer: every byte goes to COM1 and, when enabled, the VGA text
 * screen; input comes from COM1. Host context.
 *
 * COM1's bytes wait in a transmit ring and go to the UART as its FIFO
 * empties, so that a guest's line costs the exit that prints it a copy, not
 * the line's time at 115200 baud (~87 us a byte, 2-4 ms a line; hardware and
 * Bochs pace it). Every write hands the UART what it takes at once; the boot
 * CPU hands it more between guest slices and sleeps (vmm_idle, the shell's
 * loop), waking for it (console_tx_due); a full ring waits for the UART. Until
 * the shell starts every byte waits for the UART, so a boot that hangs still
 * shows its last line, and a panic flushes the ring before it halts. The
 * screens are written at once.
 */
#include "kernel/console.h"
#include "kernel/lib.h"
#include "kernel/time.h"

#define COM1 0x3F8
#define TX_RING 16384 /* bytes; a power of two (the indexes wrap) */
#define TX_BYTE_US 87 /* one byte at 115200 8N1: 10 bits */

static char tx_ring[TX_RING];
static u32 tx_head, tx_tail; /* bytes queued and sent, ever (they wrap) */
static bool tx_async;

static bool vga_on, fb_on;
static bool line_guard;			/* clear the prompt line before the next output */
static char guard_seq[24] = "\r\033[K"; /* how: by default the cursor's row */
static u64 bytes_out;
static void (*capture)(const char *s, size_t n);
static bool capture_only;
static void (*tap)(char c);

void console_init(void) { uart_init(COM1); }

void console_enable_vga(u64 text_phys)
{
	vga_init(text_phys);
	vga_on = true;
}

void console_enable_fb(u64 phys, u32 pitch, u32 width, u32 height, u8 bpp)
{
	fb_on = fbcon_init(phys, pitch, width, height, bpp);
}

void console_guard_line(bool on) { line_guard = on; }
bool console_line_guarded(void) { return __atomic_load_n(&line_guard, __ATOMIC_RELAXED); }

void console_guard_seq(const char *seq) { strlcpy(guard_seq, seq, sizeof(guard_seq)); }

u64 console_output_count(void) { return bytes_out; }

void console_set_capture(void (*fn)(const char *s, size_t n), bool exclusive)
{
	capture = fn;
	capture_only = fn && exclusive;
}

bool console_capture_exclusive(void) { return capture_only; }

void console_set_tap(void (*fn)(char c)) { tap = fn; }

void console_tx_async(bool on)
{
	if (!on)
		console_flush();
	tx_async = on;
}

bool console_tx_pending(void) { return __atomic_load_n(&tx_head, __ATOMIC_RELAXED) != tx_tail; }

/* Hands the UART queued bytes until it is busy (need == 0) or until at least
 * `need` bytes of the ring are free, waiting for it (bounded per byte, as
 * uart_putc is) where it must. */
static void tx_push(u32 need)
{
	if (!uart_present(COM1)) {
		tx_tail = tx_head;
		return;
	}
	while (tx_tail != tx_head) {
		unsigned room = uart_tx_room(COM1);

		if (!room) {
			if (TX_RING - (tx_head - tx_tail) >= need)
				return;
			uart_putc(COM1, tx_ring[tx_tail++ % TX_RING]);
			continue;
		}
		while (room-- && tx_tail != tx_head)
			uart_tx(COM1, tx_ring[tx_tail++ % TX_RING]);
	}
}

void console_tx_poll(void)
{
	if (console_tx_pending())
		tx_push(0);
}

void console_flush(void) { tx_push(TX_RING); }

u64 console_tx_due(void)
{
	return console_tx_pending() ? ticks() + uart_tx_burst(COM1) * TX_BYTE_US : ~0ULL;
}

static void tx_put(char c)
{
	if (!tx_async) {
		uart_putc(COM1, c);
		return;
	}
	if (tx_head - tx_tail == TX_RING)
		tx_push(uart_tx_burst(COM1));
	tx_ring[tx_head % TX_RING] = c;
	__atomic_store_n(&tx_head, tx_head + 1, __ATOMIC_RELAXED);
}

void console_putc(char c)
{
	if (capture) {
		capture(&c, 1);
		if (capture_only)
			return;
	}
	if (tap)
		tap(c);
	if (line_guard) {
		/* Output that interrupts a prompt (a guest's line) starts on a clean
		 * line: the sequence the line editor gave, which erases every row
		 * of the line being edited (ECMA-48 CUU, ED). */
		line_guard = false;
		for (const char *p = guard_seq; *p; p++)
			tx_put(*p);
		if (vga_on)
			vga_putc('\r');
		if (fb_on)
			fbcon_putc('\r');
	}
	bytes_out++;
	if (c == '\n')
		tx_put('\r');
	tx_put(c);
	if (vga_on)
		vga_putc(c);
	if (fb_on)
		fbcon_putc(c);
}

void console_write(const char *s, size_t n)
{
	while (n--)
		console_putc(*s++);
	console_tx_poll();
}

int console_getc(void) { return uart_getc(COM1); }
