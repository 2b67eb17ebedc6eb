/*
 * printk and the kernel message ring. Every pr_* message is stamped with the
 * time since boot and kept in a fixed ring (oldest lines drop out) that the
 * shell's `log` prints. Host context, any time after console_init().
 */
#include "kernel/printk.h"
#include "kernel/console.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/time.h"
#include "kernel/x86.h"

#define LOG_RING_SIZE 16384

static char log_ring[LOG_RING_SIZE];
static size_t log_head; /* total bytes ever written; index = head % size */

static void log_append(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_ring[(log_head + i) % LOG_RING_SIZE] = s[i];
	log_head += n;
}

void vprintk(const char *fmt, va_list ap)
{
	char buf[512];
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if ((size_t)n < sizeof(buf)) {
		console_write(buf, n);
	} else {
		/* Longer than the stack buffer (a command's help text): format it
		 * again into the heap, or print what fits if there is no heap yet. */
		char *big = kmalloc(n + 1);

		if (big) {
			vsnprintf(big, n + 1, fmt, again);
			console_write(big, n);
			kfree(big);
		} else {
			console_write(buf, sizeof(buf) - 1);
		}
	}
	va_end(again);
}

void printk(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintk(fmt, ap);
	va_end(ap);
}

static void vlog(const char *level, bool print, const char *fmt, va_list ap)
{
	char buf[512];
	int n, stamp, pre;
	u64 t = ticks();

	stamp = snprintf(buf, sizeof(buf), "[%5lu.%06lu] ", t / TICKS_PER_SEC, t % TICKS_PER_SEC);
	pre = stamp + snprintf(buf + stamp, sizeof(buf) - stamp, "%s", level);
	n = pre + vsnprintf(buf + pre, sizeof(buf) - pre, fmt, ap);
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (n && buf[n - 1] != '\n' && (size_t)n < sizeof(buf) - 1) {
		buf[n++] = '\n';
		buf[n] = '\0';
	}
	log_append(buf, n);
	if (print)
		console_write(buf + stamp, n - stamp); /* the console shows it without the stamp */
}

#define DEFINE_LOG(name, level, print) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		vlog(level, print, fmt, ap); \
		va_end(ap); \
	}
DEFINE_LOG(pr_info, "", true)
DEFINE_LOG(pr_warn, "warning: ", true)
DEFINE_LOG(pr_err, "error: ", true)
DEFINE_LOG(pr_debug, "", false)

void log_dump(void (*emit)(const char *line))
{
	size_t start = log_head > LOG_RING_SIZE ? log_head - LOG_RING_SIZE : 0;
	char line[256];
	size_t n = 0;
	bool skip_partial = start > 0; /* the oldest line may be cut: drop it */

	for (size_t i = start; i < log_head; i++) {
		char c = log_ring[i % LOG_RING_SIZE];

		if (c == '\n') {
			line[n] = '\0';
			if (!skip_partial)
				emit(line);
			skip_partial = false;
			n = 0;
		} else if (n < sizeof(line) - 1) {
			line[n++] = c;
		}
	}
}

void panic(const char *fmt, ...)
{
	va_list ap;

	cli();
	printk("\n*** Amber panic: ");
	va_start(ap, fmt);
	vprintk(fmt, ap);
	va_end(ap);
	printk("\n*** System halted.\n");
	for (;;)
		hlt();
}
