/*
 * The console: COM1 (16550 UART, 115200 8N1) for input and output, mirrored to
 * the VGA text screen when the machine booted in text mode, or to the boot
 * loader's framebuffer (UEFI), so a person at a bare-metal machine sees the
 * boot. Host context; polled, no interrupts.
 */
#ifndef AMBER_CONSOLE_H
#define AMBER_CONSOLE_H

#include "kernel/types.h"

void console_init(void);
void console_enable_vga(u64 text_phys);
void console_putc(char c);
void console_write(const char *s, size_t n);
/* While on, the next output first erases the current line (the shell sets it
 * around guest time so a guest's line does not land after the prompt). */
void console_guard_line(bool on);
/* The guard is on: the open line (the prompt) will be erased, so output of
 * another CPU need not wait for it to end (kernel/printk.c). */
bool console_line_guarded(void);
/* The control sequence the guard writes first (at most 23 bytes): the line
 * editor's, for a line that spans several rows. */
void console_guard_seq(const char *seq);
u64 console_output_count(void);
/* Next byte typed on the serial console, or -1 when none is waiting. */
int console_getc(void);

/* Sends the console's output to `fn` while it is set (the control channel
 * collects a command's output there): only to `fn` when `exclusive`, else to
 * `fn` and the screens. NULL ends it. */
void console_set_capture(void (*fn)(const char *s, size_t n), bool exclusive);
bool console_capture_exclusive(void);
/* Shows `fn` every byte the screens get while it is set (guest lines for the
 * control channel's events). NULL ends it. */
void console_set_tap(void (*fn)(char c));

/* 16550 UART on an I/O port base; also used by the guest COM1 emulation's tests. */
bool uart_probe(u16 base);
void uart_init(u16 base);
void uart_putc(u16 base, char c);
/* The transmit holding register is empty (a byte may be written now). */
bool uart_tx_ready(u16 base);
/* Writes a byte without waiting: only after uart_tx_ready(). */
void uart_tx(u16 base, char c);
int uart_getc(u16 base);

void vga_init(u64 text_phys);
void vga_putc(char c);

/* Linear framebuffer mirror (needs ioremap, so after mm_init). */
bool fbcon_init(u64 phys, u32 pitch, u32 width, u32 height, u8 bpp);
void fbcon_putc(char c);
void console_enable_fb(u64 phys, u32 pitch, u32 width, u32 height, u8 bpp);

#endif
