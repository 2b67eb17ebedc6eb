/*
 * Framebuffer console: draws the console's text with an 8x16 font into a
 * linear framebuffer that the boot loader set up (Multiboot 2 framebuffer tag;
 * what GRUB gives on UEFI machines, which have no VGA text mode). Output only,
 * 24 and 32 bits per pixel. Host context.
 */
#include "kernel/console.h"
#include "kernel/font.h"
#include "kernel/lib.h"
#include "kernel/mm.h"

#define FG 0x00C0C0C0u /* light grey */

static u8 *fb;
static u32 pitch, bytes_pp, cols, rows, col, row;

static void put_pixel_row(u8 *dst, u8 bits)
{
	for (int x = 0; x < FONT_WIDTH; x++) {
		u32 c = (bits & (0x80 >> x)) ? FG : 0;
		u8 *p = dst + x * bytes_pp;

		p[0] = c & 0xFF;
		p[1] = (c >> 8) & 0xFF;
		p[2] = (c >> 16) & 0xFF;
		if (bytes_pp == 4)
			p[3] = 0;
	}
}

static void draw(u32 cx, u32 cy, char ch)
{
	const u8 *glyph = ((u8)ch >= FONT_FIRST && (u8)ch < FONT_FIRST + FONT_GLYPHS) ?
				  font8x16[(u8)ch - FONT_FIRST] :
				  font8x16[0];
	u8 *base = fb + (u64)cy * FONT_HEIGHT * pitch + (u64)cx * FONT_WIDTH * bytes_pp;

	for (int y = 0; y < FONT_HEIGHT; y++)
		put_pixel_row(base + (u64)y * pitch, glyph[y]);
}

static void newline(void)
{
	col = 0;
	if (++row < rows)
		return;
	/* Scroll one text row up and clear the last one. */
	memmove(fb, fb + (u64)FONT_HEIGHT * pitch, (u64)(rows - 1) * FONT_HEIGHT * pitch);
	memset(fb + (u64)(rows - 1) * FONT_HEIGHT * pitch, 0, (u64)FONT_HEIGHT * pitch);
	row = rows - 1;
}

bool fbcon_init(u64 phys, u32 fb_pitch, u32 width, u32 height, u8 bpp)
{
	if ((bpp != 32 && bpp != 24) || width < FONT_WIDTH || height < FONT_HEIGHT)
		return false;
	fb = ioremap(phys, (u64)fb_pitch * height);
	if (!fb)
		return false;
	pitch = fb_pitch;
	bytes_pp = bpp / 8;
	cols = width / FONT_WIDTH;
	rows = height / FONT_HEIGHT;
	col = row = 0;
	memset(fb, 0, (u64)pitch * height);
	return true;
}

void fbcon_putc(char c)
{
	if (!fb)
		return;
	switch (c) {
	case '\n':
		newline();
		return;
	case '\r':
		col = 0;
		return;
	case '\b':
		if (col)
			col--;
		return;
	default:
		if ((u8)c < 0x20 || (u8)c > 0x7E)
			return; /* escape sequences are for the serial terminal */
		draw(col, row, c);
		if (++col == cols)
			newline();
	}
}
