/*
 * Formatted output. vsnprintf is Amber's own formatter (no libc); printk writes to
 * every console and to the kernel message ring that the shell's `log` shows.
 * Safe in any host context, including exception handlers (it takes no lock that
 * an interrupted printk could hold: Amber's host runs on one CPU, interrupts off).
 */
#ifndef AMBER_PRINTK_H
#define AMBER_PRINTK_H

#include "kernel/types.h"

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

void printk(const char *fmt, ...) __printf(1, 2);
void vprintk(const char *fmt, va_list ap);
/* Kernel log: printed, and kept in the ring with a timestamp. */
void pr_info(const char *fmt, ...) __printf(1, 2);
void pr_warn(const char *fmt, ...) __printf(1, 2);
void pr_err(const char *fmt, ...) __printf(1, 2);
/* Kept in the ring only (shown by `log`), not printed. */
void pr_debug(const char *fmt, ...) __printf(1, 2);

/* Walks the message ring oldest first. */
void log_dump(void (*emit)(const char *line));

__noreturn void panic(const char *fmt, ...) __printf(1, 2);
#define BUG_ON(cond) \
	do { \
		if (unlikely(cond)) \
			panic("BUG_ON(%s) at %s:%d", #cond, __FILE__, __LINE__); \
	} while (0)

#endif
