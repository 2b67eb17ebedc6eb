/*
 * VGA text-mode mirror of the console (80x25 at 0xB8000): lets a person at a
 * bare-metal machine watch the boot and the shell. Output only.
 */
#include "kernel/console.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/x86.h"

#define VGA_COLS 80
#define VGA_ROWS 25
#define VGA_ATTR 0x0700 /* light grey on black */

static volatile u16 *vga;
static int row, col;

static void vga_cursor(void)
{
	u16 pos = row * VGA_COLS + col;

	outb(0x3D4, 0x0F);
	outb(0x3D5, pos & 0xFF);
	outb(0x3D4, 0x0E);
	outb(0x3D5, pos >> 8);
}

void vga_init(u64 text_phys)
{
	vga = phys_to_virt(text_phys);
	for (int i = 0; i < VGA_COLS * VGA_ROWS; i++)
		vga[i] = VGA_ATTR | ' ';
	row = col = 0;
	vga_cursor();
}

static void vga_newline(void)
{
	col = 0;
	if (++row < VGA_ROWS)
		return;
	for (int i = 0; i < VGA_COLS * (VGA_ROWS - 1); i++)
		vga[i] = vga[i + VGA_COLS];
	for (int i = 0; i < VGA_COLS; i++)
		vga[(VGA_ROWS - 1) * VGA_COLS + i] = VGA_ATTR | ' ';
	row = VGA_ROWS - 1;
}

void vga_putc(char c)
{
	if (!vga)
		return;
	switch (c) {
	case '\n':
		vga_newline();
		break;
	case '\r':
		col = 0;
		break;
	case '\b':
		if (col)
			col--;
		break;
	case '\033':
		/* Escape sequences are for the serial terminal; the screen ignores the
		 * ESC and shows the rest, a small price for simplicity. */
		return;
	default:
		if ((u8)c < 0x20)
			return;
		vga[row * VGA_COLS + col] = VGA_ATTR | (u8)c;
		if (++col == VGA_COLS)
			vga_newline();
	}
	vga_cursor();
}
