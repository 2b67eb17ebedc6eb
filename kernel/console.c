/*
 * Console multiplexer: every byte goes to COM1 and, when enabled, the VGA text
 * screen; input comes from COM1. Host context.
 */
#include "kernel/console.h"
#include "kernel/lib.h"

#define COM1 0x3F8

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
			uart_putc(COM1, *p);
		if (vga_on)
			vga_putc('\r');
		if (fb_on)
			fbcon_putc('\r');
	}
	bytes_out++;
	if (c == '\n')
		uart_putc(COM1, '\r');
	uart_putc(COM1, c);
	if (vga_on)
		vga_putc(c);
	if (fb_on)
		fbcon_putc(c);
}

void console_write(const char *s, size_t n)
{
	while (n--)
		console_putc(*s++);
}

int console_getc(void) { return uart_getc(COM1); }
