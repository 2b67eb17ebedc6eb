/*
 * Formatted output. vsnprintf is Amber's own formatter (no libc); printk writes to
 * every console and to the kernel message ring that the shell's `log` shows.
 * Safe on any CPU and in exception handlers: each call's output is one piece
 * under the console lock, and a panic stops the other CPUs and frees that lock
 * before it prints (an exception inside printk on the same CPU included).
 */
#ifndef AMBER_PRINTK_H
#define AMBER_PRINTK_H

#include "kernel/types.h"

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

void printk(const char *fmt, ...) __printf(1, 2);
void vprintk(const char *fmt, va_list ap);
/* Writes s[0..n) unformatted, as one piece under the console lock (the line
 * editor's echo and redraws). */
void printk_write(const char *s, size_t n);
/* Kernel log: printed, and kept in the ring with a timestamp. */
void pr_info(const char *fmt, ...) __printf(1, 2);
void pr_warn(const char *fmt, ...) __printf(1, 2);
void pr_err(const char *fmt, ...) __printf(1, 2);
/* Kept in the ring only (shown by `log`), not printed. */
void pr_debug(const char *fmt, ...) __printf(1, 2);

/* Walks the message ring oldest first. */
void log_dump(void (*emit)(const char *line));

/* Stops every other CPU (smp_panic_stop), prints and halts. */
__noreturn void panic(const char *fmt, ...) __printf(1, 2);
/* Panic only, every other CPU stopped: frees the console lock. */
void printk_panic_unlock(void);
#define BUG_ON(cond) \
	do { \
		if (unlikely(cond)) \
			panic("BUG_ON(%s) at %s:%d", #cond, __FILE__, __LINE__); \
	} while (0)

#endif
